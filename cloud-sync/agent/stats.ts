// Counters the runtime can expose (agent.stats()): what the agent ignored and why, and what it
// moved. Plain numbers, no metrics library: the runtime decides how to publish them.

export interface AgentStats {
  /** Incoming messages dropped, by reason. */
  ignored: {
    oversized: number;
    json: number;
    /** Nested more than MAX_JSON_DEPTH levels (runtime/base/json-depth.ts). */
    depth: number;
    schema: number;
    /** Chunks for a model/version with no download in progress, or an index out of range. */
    unknownChunk: number;
    /** Desired documents whose version is not above the last applied one. */
    staleDesired: number;
    /** Messages on a topic the agent does not handle. */
    unknownTopic: number;
  };
  connects: number;
  disconnects: number;
  /** Connections closed by the broker because another client took over the device's client id. */
  displaced: number;
  eventsPublished: number;
  batchesPublished: number;
  /** Ack messages from the fleet (P/devices/{id}/events/ack). */
  fleetAcks: number;
  /** Events deleted because the fleet acked them. */
  eventsAckedByFleet: number;
  /** Events sent again because no fleet ack came in time. */
  eventsResent: number;
  chunksReceived: number;
  chunkBytesReceived: number;
  chunksRequested: number;
  /** Chunks dropped for wrong bytes (length, or SHA-256 in the spec's chunkDigests) and asked for again. */
  chunksRejected: number;
  desiredApplied: number;
  modelUpdatesApplied: number;
  modelUpdatesFailed: number;
  rollbacks: number;
  commands: number;
}

export function emptyStats(): AgentStats {
  return {
    ignored: { oversized: 0, json: 0, depth: 0, schema: 0, unknownChunk: 0, staleDesired: 0, unknownTopic: 0 },
    connects: 0,
    disconnects: 0,
    displaced: 0,
    eventsPublished: 0,
    batchesPublished: 0,
    fleetAcks: 0,
    eventsAckedByFleet: 0,
    eventsResent: 0,
    chunksReceived: 0,
    chunkBytesReceived: 0,
    chunksRequested: 0,
    chunksRejected: 0,
    desiredApplied: 0,
    modelUpdatesApplied: 0,
    modelUpdatesFailed: 0,
    rollbacks: 0,
    commands: 0,
  };
}

/** A deep copy, so callers cannot change the live counters. */
export function snapshot(stats: AgentStats): AgentStats {
  return { ...stats, ignored: { ...stats.ignored } };
}
