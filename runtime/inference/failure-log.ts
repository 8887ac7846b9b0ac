// Inference failures that are Perch's or the model's fault (status 500: onnxruntime refused the
// batch, a session thread died, a bug) go to the log, with the model, version and code. A broken
// model can fail every request: each model/version/code is logged at most once per interval, and
// the failures held back are written with their count when the interval ends (base/log-limit.ts,
// as the agent's refused MQTT messages), so a burst that stops is still counted. Client errors
// (4xx) and busy answers (429, 503, 504) are the client's to see, in its answer and in
// perch_inference_request_failure_total. An answer that throws (afterAnswer) is Perch's too,
// logged the same way.
import type { Clock } from '../base/clock.js';
import type { PerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';
import { LOG_LIMIT_INTERVAL_MS, LogLimiter } from '../base/log-limit.js';

export class FailureLog {
  private readonly limiter: LogLimiter;

  constructor(
    private readonly log: Logger,
    clock: Clock,
    intervalMs = LOG_LIMIT_INTERVAL_MS,
  ) {
    this.limiter = new LogLimiter(clock, intervalMs);
  }

  report(model: string, version: string, err: PerchError): void {
    if (err.status !== 500) return;
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    this.limiter.line(`${model}\u0000${version}\u0000${err.code}`, (held) =>
      this.log.error(
        { model, version, code: err.code, err: err.message, ...(cause && cause !== err.message ? { cause } : {}), ...(held ? { alsoFailedSinceLastLine: held } : {}) },
        'inference failed',
      ),
    );
  }

  /**
   * What went wrong once an inference was answered: its answer threw (a send that failed), or it
   * ended again. Perch's bug, not the client's: the call is not answered twice (infer-call.ts),
   * and this is where it shows, with the exception's stack.
   */
  afterAnswer(model: string, version: string, err: unknown): void {
    this.limiter.line(`${model}\u0000${version}\u0000answer`, (held) =>
      this.log.error({ model, version, err, ...(held ? { alsoFailedSinceLastLine: held } : {}) }, 'answering an inference failed'),
    );
  }

  /** Writes what is held back, with its count, and stops the interval timers (the runtime stops). */
  close(): void {
    this.limiter.close();
  }
}
