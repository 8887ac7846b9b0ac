// Runs named jobs on node-cron schedules, each isolated: a throwing or rejecting job is logged
// through pino and counted, the others go on. A job still running when its next tick comes is
// skipped, not stacked (a slow checkpoint on an SD card must not pile up).
import { createTask, validate, type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import { systemClock, type Clock } from '../base/clock.js';
import { PerchError } from '../base/errors.js';
import { silentLogger, type Logger } from '../base/log.js';
import type { Job, JobStatus } from './job.js';

export interface JobSchedulerOptions {
  logger?: Logger;
  clock?: Clock;
}

interface Entry {
  job: Job;
  status: JobStatus;
  task: ScheduledTask | null;
  current: Promise<void> | null;
}

export class JobScheduler {
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private started = false;

  constructor(jobs: readonly Job[], opts: JobSchedulerOptions = {}) {
    this.logger = (opts.logger ?? silentLogger()).child({ module: 'jobs' });
    this.clock = opts.clock ?? systemClock;
    for (const job of jobs) {
      if (this.entries.has(job.name)) throw new PerchError('PERCH_ERR_INTERNAL', `two jobs named ${job.name}`);
      // The config schema rejects bad expressions already; this guards jobs built in code.
      if (!validate(job.schedule)) throw new PerchError('PERCH_ERR_CONFIG_INVALID', `job ${job.name}: invalid cron expression "${job.schedule}"`);
      this.entries.set(job.name, {
        job,
        task: null,
        current: null,
        status: { name: job.name, schedule: job.schedule, runs: 0, failures: 0, running: false, lastRunAt: null, lastDurationMs: null, lastError: null },
      });
    }
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const cronLogger = this.cronLogger();
    for (const entry of this.entries.values()) {
      const task = createTask(entry.job.schedule, () => this.runEntry(entry), { name: `perch:${entry.job.name}`, noOverlap: true, logger: cronLogger });
      entry.task = task;
      void Promise.resolve(task.start()).catch((err: unknown) => this.logger.error({ err, job: entry.job.name }, 'job could not be scheduled'));
    }
    this.logger.debug({ jobs: [...this.entries.keys()] }, 'jobs started');
  }

  /** Stops every schedule and waits for runs in progress to finish. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    const running: Promise<void>[] = [];
    for (const entry of this.entries.values()) {
      const task = entry.task;
      entry.task = null;
      if (task) {
        try {
          await task.stop();
          await task.destroy();
        } catch (err) {
          this.logger.warn({ err, job: entry.job.name }, 'job schedule did not stop cleanly');
        }
      }
      if (entry.current) running.push(entry.current);
    }
    await Promise.all(running);
  }

  /** Runs a job now, isolated like a scheduled run; resolves true when it succeeded. Unknown names throw. */
  async runNow(name: string): Promise<boolean> {
    const entry = this.entries.get(name);
    if (!entry) throw new PerchError('PERCH_ERR_INTERNAL', `no job named ${name}`);
    const before = entry.status.failures;
    await this.runEntry(entry);
    return entry.status.failures === before;
  }

  status(): JobStatus[] {
    return [...this.entries.values()].map((e) => ({ ...e.status }));
  }

  /** Never rejects: the isolation boundary. */
  private runEntry(entry: Entry): Promise<void> {
    if (entry.current) {
      this.logger.debug({ job: entry.job.name }, 'job still running, tick skipped');
      return entry.current;
    }
    const s = entry.status;
    const started = this.clock.now();
    s.running = true;
    s.runs++;
    s.lastRunAt = this.clock.wallNow();
    const run = (async () => {
      try {
        await entry.job.run();
        s.lastError = null;
      } catch (err) {
        s.failures++;
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof PerchError && err.code !== 'PERCH_ERR_INTERNAL') {
          // A known condition (a full disk, a read-only store): its code and message say it all,
          // and a job that keeps meeting it every tick is logged again only when the error changes.
          const level = message === s.lastError ? 'debug' : 'warn';
          this.logger[level]({ job: entry.job.name, code: err.code, err: message, failures: s.failures }, 'job failed');
        } else {
          this.logger.error({ err, job: entry.job.name }, 'job failed');
        }
        s.lastError = message;
      } finally {
        s.running = false;
        s.lastDurationMs = this.clock.now() - started;
      }
    })();
    // Cleared in a later microtask, never inside the IIFE: a job that throws synchronously
    // finishes before `run` is assigned, and clearing there would leave a stale `current`.
    const tracked: Promise<void> = run.finally(() => {
      if (entry.current === tracked) entry.current = null;
    });
    entry.current = tracked;
    return tracked;
  }

  /** node-cron's own messages (missed ticks after a blocked event loop) go to pino, not the console. */
  private cronLogger(): CronLogger {
    const log = this.logger;
    return {
      info: (message) => log.info(message),
      warn: (message) => log.warn(message),
      error: (message, err) => log.error({ err: err ?? message }, typeof message === 'string' ? message : message.message),
      debug: (message, err) => log.debug({ err }, typeof message === 'string' ? message : message.message),
    };
  }
}
