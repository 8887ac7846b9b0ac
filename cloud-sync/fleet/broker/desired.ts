// Read-modify-publish of a device's desired document (docs/protocol.md section 5): the next
// document keeps every model and config key of the current one, changes what was asked, and
// carries a version above any the fleet or the device has seen, so versions only rise.
import type { MqttClient } from 'mqtt';
import { PerchError } from '../../../runtime/base/errors.js';
import { parsePayload } from '../../protocol/parse.js';
import { desiredSchema, reportedSchema, type DesiredState } from '../../protocol/schemas.js';
import { topics } from '../../protocol/topics.js';
import { openFleetStore, type FleetStoreLocation } from '../store/open.js';
import { readRetained } from './retained.js';

export interface DeviceDocs {
  desired: DesiredState | undefined;
  /** Raw retained status / reported documents, when present. */
  status: Buffer | undefined;
  reported: Buffer | undefined;
}

/** The retained desired, status and reported documents of one device. */
export async function readDeviceDocs(client: MqttClient, prefix: string, deviceId: string, timeoutMs: number): Promise<DeviceDocs> {
  const t = topics(prefix, deviceId);
  const msgs = await readRetained(client, prefix, [t.desired, t.status, t.reported], timeoutMs);
  const docs: DeviceDocs = { desired: undefined, status: undefined, reported: undefined };
  for (const m of msgs) {
    if (m.topic === t.status) docs.status = m.payload;
    else if (m.topic === t.reported) docs.reported = m.payload;
    else if (m.topic === t.desired) {
      const parsed = parsePayload(desiredSchema, m.payload);
      // A broken retained document must not be silently replaced by version 1: versions only rise.
      if (!parsed.ok) throw new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', `retained desired state of ${deviceId}: ${parsed.error.message}`);
      docs.desired = parsed.value;
    }
  }
  return docs;
}

/**
 * The next desired document: a copy of `current` with `change` applied and the version raised
 * above both its own and `floor` (the highest version the fleet or the device has seen).
 */
export function nextDesired(current: DesiredState | undefined, change: (doc: DesiredState) => void, floor = 0): DesiredState {
  const doc: DesiredState = structuredClone(current ?? { version: 0, models: {}, config: {} });
  doc.models ??= {};
  doc.config ??= {};
  change(doc);
  doc.version = Math.max(current?.version ?? 0, floor) + 1;
  return desiredSchema.parse(doc);
}

/** The desiredVersion a device last reported (0 when unknown). */
export function reportedDesiredVersion(reported: Buffer | undefined): number {
  if (!reported) return 0;
  const parsed = parsePayload(reportedSchema, reported);
  return parsed.ok ? parsed.value.desiredVersion : 0;
}

/**
 * Read-modify-publish with the fleet's own counter (docs/fleet.md, "Desired versions"): the next
 * document starts from the fleet store's copy (or the retained one, when it is newer: a store
 * from before the counter existed), its version is above everything the fleet stored, the broker
 * retains and the device reported, and it is recorded in the store before it is published.
 */
export async function publishNext(client: MqttClient, where: FleetStoreLocation, prefix: string, deviceId: string, docs: DeviceDocs, change: (doc: DesiredState) => void): Promise<DesiredState> {
  const db = await openFleetStore(where);
  try {
    const stored = await db.desired(deviceId);
    const base = docs.desired && (!stored || docs.desired.version > stored.version) ? docs.desired : stored;
    const floor = Math.max(stored?.version ?? 0, docs.desired?.version ?? 0, reportedDesiredVersion(docs.reported));
    const next = await db.recordDesired(deviceId, nextDesired(base, change, floor), Date.now());
    await publishDesired(client, prefix, deviceId, next);
    return next;
  } finally {
    await db.close();
  }
}

export async function publishDesired(client: MqttClient, prefix: string, deviceId: string, doc: DesiredState): Promise<void> {
  const packet = await client.publishAsync(topics(prefix, deviceId).desired, JSON.stringify(doc), { qos: 1, retain: true });
  // MQTT 5 PUBACK reason codes >= 0x80 are refusals (ACL: 0x87 not authorized).
  const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
  if (rc >= 0x80) throw new PerchError('PERCH_ERR_BROKER_UNREACHABLE', `the broker refused the desired state of ${deviceId} (reason code ${rc})`);
}

/** Deep merge for config: objects merge key by key, anything else replaces. */
export function mergeConfig(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const prev = out[k];
    const bothObjects = [prev, v].every((x) => typeof x === 'object' && x !== null && !Array.isArray(x));
    out[k] = bothObjects ? mergeConfig(prev as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}
