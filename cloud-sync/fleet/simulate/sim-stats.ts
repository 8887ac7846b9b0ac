// Counters of one `perch fleet simulate` run, summed over its devices (printed as progress lines).
export interface SimStats {
  connects: number;
  disconnects: number;
  connectErrors: number;
  reportsSent: number;
  eventsSent: number;
  eventsResent: number;
  /** Events not generated because the device held maxAwaitingEvents unacked already. */
  eventsNotGenerated: number;
  acksReceived: number;
  chunksRequested: number;
  chunksReceived: number;
  chunkBytesReceived: number;
  /** Chunks for no download in progress (late duplicates, or never asked for). */
  chunksIgnored: number;
  updatesStarted: number;
  updatesApplied: number;
  updatesFailed: number;
  rollbacks: number;
}

export function newSimStats(): SimStats {
  return {
    connects: 0, disconnects: 0, connectErrors: 0, reportsSent: 0, eventsSent: 0, eventsResent: 0, eventsNotGenerated: 0,
    acksReceived: 0, chunksRequested: 0, chunksReceived: 0, chunkBytesReceived: 0, chunksIgnored: 0,
    updatesStarted: 0, updatesApplied: 0, updatesFailed: 0, rollbacks: 0,
  };
}
