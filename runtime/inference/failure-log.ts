// Inference failures that are Perch's or the model's fault (status 500: onnxruntime refused the
// batch, a session thread died, a bug) go to the log, with the model, version and code. A broken
// model can fail every request: each model/version/code is logged at most once per interval, with
// how many failures the interval held. Client errors (4xx) and busy answers (429, 503, 504) are
// the client's to see, in its answer and in perch_inference_request_failure_total. An answer that
// throws (afterAnswer) is Perch's too, logged the same way.
import type { Clock } from '../base/clock.js';
import type { PerchError } from '../base/errors.js';
import type { Logger } from '../base/log.js';

const FAILURE_LOG_INTERVAL_MS = 10_000;

export class FailureLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly intervalMs = FAILURE_LOG_INTERVAL_MS,
  ) {}

  report(model: string, version: string, err: PerchError): void {
    if (err.status !== 500) return;
    const suppressed = this.due(`${model}\u0000${version}\u0000${err.code}`);
    if (suppressed < 0) return;
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    this.log.error(
      { model, version, code: err.code, err: err.message, ...(cause && cause !== err.message ? { cause } : {}), ...(suppressed ? { alsoFailedSinceLastLine: suppressed } : {}) },
      'inference failed',
    );
  }

  /**
   * What went wrong once an inference was answered: its answer threw (a send that failed), or it
   * ended again. Perch's bug, not the client's: the call is not answered twice (infer-call.ts),
   * and this is where it shows, with the exception's stack.
   */
  afterAnswer(model: string, version: string, err: unknown): void {
    const suppressed = this.due(`${model}\u0000${version}\u0000answer`);
    if (suppressed < 0) return;
    this.log.error({ model, version, err, ...(suppressed ? { alsoFailedSinceLastLine: suppressed } : {}) }, 'answering an inference failed');
  }

  /** -1 within the interval of the key's last line (counted); else how many it held since that line. */
  private due(key: string): number {
    const now = this.clock.now();
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.intervalMs) {
      seen.suppressed++;
      return -1;
    }
    this.last.set(key, { at: now, suppressed: 0 });
    return seen?.suppressed ?? 0;
  }
}
