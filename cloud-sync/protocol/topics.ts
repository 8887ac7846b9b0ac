// Topic names of docs/protocol.md section 5, built in one place so the device agent and `perch fleet`
// cannot drift apart. `P` is the configurable prefix (default `perch/v1`).

import { NAME_PATTERN } from './schemas.js';

export const DEFAULT_PREFIX = 'perch/v1';

/** Share group of `perch fleet serve` for events ([MQTT-4.8.2]: `$share/{group}/{filter}`). */
export const FLEET_SHARE_GROUP = 'perch-fleet';

export interface DeviceTopics {
  /** Device publishes, retained: online/offline (also the Last Will). */
  status: string;
  /** Device publishes, not retained: event batches. */
  events: string;
  /** Fleet publishes, device subscribes, not retained: which event seqs the fleet has stored. */
  eventsAck: string;
  /** Device publishes, retained: what it applied. */
  reported: string;
  /** Device publishes, not retained: chunk requests. */
  modelsRequest: string;
  /** Device subscribes, retained: what it should run. */
  desired: string;
  /** Device subscribes, not retained. */
  commands: string;
  /** Device subscribes: one chunk's raw bytes. */
  chunk(name: string, version: number, index: number): string;
  /** Filter matching every chunk of one model version. */
  chunks(name: string, version: number): string;
  /** Filter matching every chunk of every model for this device. */
  allChunks: string;
}

function trimPrefix(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

/** Topics of one device. */
export function topics(prefix: string, deviceId: string): DeviceTopics {
  const base = `${trimPrefix(prefix)}/devices/${deviceId}`;
  return {
    status: `${base}/status`,
    events: `${base}/events`,
    eventsAck: `${base}/events/ack`,
    reported: `${base}/state/reported`,
    modelsRequest: `${base}/models/request`,
    desired: `${base}/state/desired`,
    commands: `${base}/commands`,
    chunk: (name, version, index) => `${base}/models/${name}/${version}/chunks/${index}`,
    chunks: (name, version) => `${base}/models/${name}/${version}/chunks/+`,
    allChunks: `${base}/models/+/+/chunks/+`,
  };
}

/** Wildcard filters over every device, for the cloud side. */
export function fleetTopics(prefix: string, shareGroup: string = FLEET_SHARE_GROUP) {
  const base = `${trimPrefix(prefix)}/devices/+`;
  return {
    status: `${base}/status`,
    reported: `${base}/state/reported`,
    desired: `${base}/state/desired`,
    modelsRequest: `${base}/models/request`,
    events: `${base}/events`,
    /** Shared subscription: each event batch goes to one member of the group. */
    sharedEvents: `$share/${shareGroup}/${base}/events`,
  };
}

export type DeviceTopicKind = 'status' | 'events' | 'eventsAck' | 'reported' | 'desired' | 'modelsRequest' | 'commands' | 'chunk';

export interface ParsedTopic {
  deviceId: string;
  kind: DeviceTopicKind;
  /** For 'chunk'. */
  name?: string;
  version?: number;
  index?: number;
}

/**
 * The device id and kind of a topic under `prefix`, or undefined when it is not one of ours. A
 * device id outside NAME_PATTERN (what a device's config allows) is not one: a broker lets any
 * UTF-8 through, and `perch fleet` would otherwise store and show ids with bidi controls or
 * look-alike letters, which no command can name (docs/fleet.md "serve").
 */
export function parseTopic(prefix: string, topic: string): ParsedTopic | undefined {
  const head = `${trimPrefix(prefix)}/devices/`;
  if (!topic.startsWith(head)) return undefined;
  const parts = topic.slice(head.length).split('/');
  const [deviceId, a, b, c, d, e] = parts;
  if (!deviceId || !NAME_PATTERN.test(deviceId)) return undefined;
  const n = parts.length;
  if (n === 2 && a === 'status') return { deviceId, kind: 'status' };
  if (n === 2 && a === 'events') return { deviceId, kind: 'events' };
  if (n === 2 && a === 'commands') return { deviceId, kind: 'commands' };
  if (n === 3 && a === 'events' && b === 'ack') return { deviceId, kind: 'eventsAck' };
  if (n === 3 && a === 'state' && b === 'reported') return { deviceId, kind: 'reported' };
  if (n === 3 && a === 'state' && b === 'desired') return { deviceId, kind: 'desired' };
  if (n === 3 && a === 'models' && b === 'request') return { deviceId, kind: 'modelsRequest' };
  if (n === 6 && a === 'models' && b && d === 'chunks' && /^\d+$/.test(c ?? '') && /^\d+$/.test(e ?? '')) {
    return { deviceId, kind: 'chunk', name: b, version: Number(c), index: Number(e) };
  }
  return undefined;
}
