// Counters of one `serve` process, logged as `progress` lines and on exit.
export interface ServeStats {
  batches: number;
  eventsStored: number;
  duplicates: number;
  /** Ack messages published to devices (events/ack). */
  acksSent: number;
  /** Group commits (ingest-commit.ts): store transactions, the writes they held, the largest group. */
  commits: number;
  groupedWrites: number;
  largestGroup: number;
  statusUpdates: number;
  reportedUpdates: number;
  chunkRequests: number;
  chunksSent: number;
  /** Chunks asked for beyond the device's queue (--max-queued-chunks): dropped (chunk-share.ts). */
  chunksRefused: number;
  /** Chunks asked for that were already waiting for the device: queued once. */
  chunkDuplicates: number;
  bytesSent: number;
  /** Model requests answered by the HTTP server (--http), and the body bytes it sent. */
  httpRequests: number;
  httpBytesSent: number;
  /** Ignored messages by reason: topic (not serve's, or no device id), oversized, json, depth, schema, mismatch, not-desired, unknown-model, out-of-range, queue-full, too-many-requests, error. */
  ignored: Record<string, number>;
}

export function newStats(): ServeStats {
  return {
    batches: 0, eventsStored: 0, duplicates: 0, acksSent: 0, commits: 0, groupedWrites: 0, largestGroup: 0, statusUpdates: 0, reportedUpdates: 0,
    chunkRequests: 0, chunksSent: 0, chunksRefused: 0, chunkDuplicates: 0, bytesSent: 0, httpRequests: 0, httpBytesSent: 0, ignored: {},
  };
}

export function countIgnored(stats: ServeStats, reason: string): void {
  stats.ignored[reason] = (stats.ignored[reason] ?? 0) + 1;
}
