// `perch fleet push --wait`: follows the device's retained state/reported after a push until it
// says how the pushed version ended: active, failed (with the device's code), ignored (the
// document was not applied: its version was not above the device's, or the device refused it
// unread, e.g. over its cloud.maxPayloadBytes; with the device's code), or nothing in time. While
// the device downloads, its progress (reported at most once a second) is printed on one line.
import type { MqttClient } from 'mqtt';
import { parsePayload } from '../../protocol/parse.js';
import { reportedSchema, type DesiredState, type ModelSpec, type ReportedState } from '../../protocol/schemas.js';
import { topics } from '../../protocol/topics.js';
import { visible } from '../cli/visible.js';

export type WaitOutcome = 'active' | 'failed' | 'ignored' | 'timeout';

/** Exit codes of `push --wait` (docs/fleet.md): 1 and 2 keep their meaning for every command. */
export const WAIT_EXIT: Record<WaitOutcome, number> = { active: 0, failed: 1, ignored: 3, timeout: 4 };

export interface WaitTarget {
  deviceId: string;
  doc: DesiredState;
  name: string;
  spec: ModelSpec;
}

/** `CODE: reason` (devices older than the code say the reason alone). */
export function ignoredDetail(ignored: { code?: string; reason: string }): string {
  return ignored.code ? `${ignored.code}: ${ignored.reason}` : ignored.reason;
}

/** What one state/reported says about the push; null while it says nothing final. */
export function judge(rep: ReportedState, t: WaitTarget): { outcome: Exclude<WaitOutcome, 'timeout'>; detail: string } | null {
  if (rep.ignored?.version === t.doc.version) return { outcome: 'ignored', detail: ignoredDetail(rep.ignored) };
  if (rep.desiredVersion < t.doc.version) return null;
  const m = rep.models[t.name];
  if (!m || m.version !== t.spec.version) return null;
  if (m.status === 'active' && m.sha256 === t.spec.sha256) return { outcome: 'active', detail: 'active' };
  if (m.status === 'failed') return { outcome: 'failed', detail: m.error ? `${m.error.code}: ${m.error.message}` : 'failed' };
  return null;
}

/** One line of progress, or null when the report says nothing new about this version. */
export function progressLine(rep: ReportedState, t: WaitTarget): string | null {
  if (rep.desiredVersion < t.doc.version) return null;
  const m = rep.models[t.name];
  if (!m || m.version !== t.spec.version) return null;
  if (m.status === 'downloading' && m.progress && m.progress.total > 0) {
    return `downloading ${m.progress.staged}/${m.progress.total} chunks (${Math.floor((100 * m.progress.staged) / m.progress.total)}%)`;
  }
  return m.status;
}

export async function waitForOutcome(client: MqttClient, prefix: string, t: WaitTarget, timeoutMs: number, err: NodeJS.WritableStream): Promise<WaitOutcome> {
  const topic = topics(prefix, t.deviceId).reported;
  const label = `perch fleet push: ${t.deviceId} ${t.name} v${t.spec.version}`;
  let last = '';
  let onMessage: ((topic: string, payload: Buffer) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await new Promise<WaitOutcome>((resolve) => {
    timer = setTimeout(() => {
      err.write(`${label}: no outcome within ${Math.round(timeoutMs / 1000)} s${last ? ` (last: ${last})` : ''}\n`);
      resolve('timeout');
    }, timeoutMs);
    onMessage = (got, payload) => {
      if (got !== topic || payload.length === 0) return;
      const parsed = parsePayload(reportedSchema, payload);
      if (!parsed.ok) return;
      // The device's words (error messages, reasons) on one line each (cli/visible.ts).
      const line = visible(progressLine(parsed.value, t) ?? '', true);
      if (line && line !== last) {
        last = line;
        err.write(`${label}: ${line}\n`);
      }
      const j = judge(parsed.value, t);
      if (!j) return;
      if (j.outcome !== 'active' || line !== 'active') err.write(`${label}: ${j.outcome}${j.detail !== j.outcome ? `: ${visible(j.detail, true)}` : ''}\n`);
      resolve(j.outcome);
    };
    client.on('message', onMessage);
    client.subscribeAsync(topic, { qos: 1 }).catch(() => undefined);
  });
  clearTimeout(timer);
  if (onMessage) client.off('message', onMessage);
  return outcome;
}
