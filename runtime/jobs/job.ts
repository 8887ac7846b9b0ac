// A background job: a name, a cron schedule and one function. Jobs are isolated: a job that
// throws is logged and counted, and neither the other jobs nor the runtime notice.

export interface Job {
  /** Unique, used in logs and status. */
  name: string;
  /** node-cron expression: [second] minute hour day-of-month month day-of-week. */
  schedule: string;
  run(): unknown;
}

export interface JobStatus {
  name: string;
  schedule: string;
  runs: number;
  failures: number;
  running: boolean;
  /** Wall-clock epoch ms of the last start, or null. */
  lastRunAt: number | null;
  lastDurationMs: number | null;
  lastError: string | null;
}
