// Shared pieces of the fleet tests: run `perch fleet` in-process (fast) or as a real process
// (serve, exit codes), and a minimal device made of a raw mqtt.js client that publishes what
// docs/protocol.md section 5 says a device publishes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { run } from '../../cloud-sync/fleet/cli/main.js';
import { desiredSchema, type DesiredState } from '../../cloud-sync/protocol/schemas.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { CLI, cleanEnv } from '../helpers/perch-process.js';
import { Child } from '../helpers/wire.js';

export const PREFIX = 'perch/v1';

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

export interface FleetResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `perch fleet ...args` in this process. */
export async function fleet(args: string[]): Promise<FleetResult> {
  const out = new Collect();
  const err = new Collect();
  const code = await run(args, out, err);
  return { code, stdout: out.text, stderr: err.text };
}

/** `perch fleet ...args` as a real process through the `perch` bin. */
export function spawnFleet(args: string[], env: Record<string, string> = {}): Child {
  return Child.spawn(process.execPath, [CLI, 'fleet', ...args], { env: cleanEnv(env) });
}

export class TempDirs {
  private readonly dirs: string[] = [];
  make(prefix = 'perch-fleet-'): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }
  cleanup(): void {
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

export async function mqttClient(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
}

/** A device that announces itself: retained status (online) and reported state. */
export async function announceDevice(client: MqttClient, deviceId: string, reported: Record<string, unknown> = {}): Promise<void> {
  const t = topics(PREFIX, deviceId);
  await client.publishAsync(t.status, JSON.stringify({ online: true, ts: Date.now(), runtimeVersion: '0.1.0', bootId: 'boot-1' }), { qos: 1, retain: true });
  await client.publishAsync(t.reported, JSON.stringify({ desiredVersion: 0, models: {}, config: {}, ts: Date.now(), ...reported }), { qos: 1, retain: true });
}

/** Messages on `filter` collected as they come. */
export function collect(client: MqttClient, match: (topic: string) => boolean): Array<{ topic: string; payload: Buffer }> {
  const got: Array<{ topic: string; payload: Buffer }> = [];
  client.on('message', (topic, payload) => {
    if (match(topic)) got.push({ topic, payload });
  });
  return got;
}

/** What a device subscribing now gets as its retained desired state (waits for it to exist). */
export async function retainedDesired(url: string, deviceId: string): Promise<DesiredState> {
  const c = await mqttClient(url);
  let got: Buffer | undefined;
  c.on('message', (_t, p) => (got = p));
  await c.subscribeAsync(topics(PREFIX, deviceId).desired, { qos: 1 });
  await waitFor(() => got !== undefined, 5000, 'the retained desired state');
  await c.endAsync();
  return desiredSchema.parse(JSON.parse(String(got)));
}
