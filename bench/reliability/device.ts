// What the failure campaigns (disk full, crash, broker outage; docs/reliability.md) share: a real
// Mosquitto on a loopback port, a device run as `perch serve` on a data dir that outlives it (so
// it can be SIGKILLed and started again), clients that emit events over WebSocket and remember
// which ones Perch acknowledged, and a consumer on the cloud side that says which arrived.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { eventsConsumer, type EventsConsumer } from '../../test/cloud-sync/helpers/mqtt-client.js';
import { startMosquitto, type Mosquitto } from '../../test/helpers/mosquitto.js';
import { CLI, cleanEnv } from '../../test/helpers/perch-process.js';
import { SHIPPED_MODELS } from '../../test/helpers/paths.js';
import { Child } from '../../test/helpers/wire.js';
import { waitFor } from '../../test/helpers/wait.js';

export { startMosquitto, eventsConsumer, waitFor, type Mosquitto, type EventsConsumer };

export interface Device {
  child: Child;
  port: number;
  baseUrl: string;
  wsUrl: string;
  /** Milliseconds from spawn to 'perch is serving'. */
  startMs: number;
}

/** The config of a campaign device: shipped models, a random port, synced with `mqttUrl`. */
export function writeConfig(file: string, deviceId: string, dataDir: string, mqttUrl: string, extra: Record<string, unknown> = {}): void {
  writeFileSync(file, JSON.stringify({
    device: { id: deviceId },
    dataDir,
    models: { repository: SHIPPED_MODELS },
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'info' },
    cloud: { mqttUrl, reconnect: { minMs: 50, maxMs: 400 } },
    ...extra,
  }));
}

const live = new Set<Child>();
process.on('exit', () => {
  for (const c of live) c.proc.kill('SIGKILL');
});

/** `perch serve --config file` with the allocator settings it ships with; resolved once it serves. */
export async function serve(configFile: string, timeoutMs = 60_000): Promise<Device> {
  const t0 = performance.now();
  const child = Child.spawn(process.execPath, [CLI, 'serve', '--config', configFile], {
    env: cleanEnv({ MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '16384' }),
  });
  live.add(child);
  void child.exited.then(() => live.delete(child));
  const serving = (): Record<string, unknown> | undefined => child.logLines().find((l) => l.msg === 'perch is serving');
  await waitFor(() => !child.running || serving() !== undefined, timeoutMs, 'perch is serving', 20);
  if (!child.running) throw new Error(`perch serve exited early:\n${child.stderr}\n${child.stdout.slice(-2000)}`);
  const port = (serving() as { port: number }).port;
  // Only the log lines after 'perch is serving' are needed from here: keep the buffer small.
  return { child, port, baseUrl: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/v1/ws`, startMs: performance.now() - t0 };
}

/**
 * The end of every failure campaign, in this order whatever went wrong: the clients stop (they
 * would reconnect to a device being stopped), the device stops, then the cloud side (consumer,
 * broker) closes, the data dir last.
 */
export async function tearDown(run: { clients: ReadonlyArray<{ stop(): Promise<void> }>; device: Device; consumer: EventsConsumer; broker: Mosquitto; dir?: string }): Promise<void> {
  for (const c of run.clients) await c.stop();
  await stopDevice(run.device);
  await run.consumer.close();
  await run.broker.close();
  if (run.dir !== undefined) rmSync(run.dir, { recursive: true, force: true });
}

/** SIGTERM and wait (SIGKILL after 15 s). */
export async function stopDevice(d: Device): Promise<void> {
  if (!d.child.running) return;
  d.child.proc.kill('SIGTERM');
  const t = setTimeout(() => d.child.proc.kill('SIGKILL'), 15_000);
  await d.child.exited;
  clearTimeout(t);
}

export interface EmitCounts {
  /** Keys (`client:n`) Perch acknowledged: durable on disk. */
  acked: Set<string>;
  /** Answers by error code. */
  refused: Record<string, number>;
  /** Emits whose answer never came (the connection died first): may or may not be stored. */
  unanswered: number;
}

export interface Emitters {
  counts: EmitCounts;
  /** Acknowledgements so far, and the time of the last one. */
  readonly ackedCount: number;
  readonly lastAckAt: number;
  stop(): Promise<void>;
}

/**
 * `clients` WebSocket connections, each keeping `window` emits in flight (or at most `perSecond`
 * in total), payload `{ key }` with a key unique across restarts (`prefix` names the run).
 * Connections that close (the device was killed) are opened again while running.
 */
export function emitters(wsUrl: () => string, prefix: string, clients: number, window: number, perSecond = Infinity): Emitters {
  const counts: EmitCounts = { acked: new Set(), refused: {}, unanswered: 0 };
  let running = true;
  let lastAckAt = 0;
  const sockets = new Set<WebSocket>();
  let tokens = perSecond === Infinity ? Infinity : 0;
  const refill = perSecond === Infinity ? null : setInterval(() => (tokens = Math.min(perSecond, tokens + perSecond / 20)), 50);
  let n = 0;
  const closed: Array<Promise<void>> = [];
  const client = (c: number): void => {
    if (!running) return;
    const ws = new WebSocket(wsUrl(), { perMessageDeflate: false });
    sockets.add(ws);
    const inFlight = new Map<string, string>();
    const send = (): void => {
      while (running && ws.readyState === WebSocket.OPEN && inFlight.size < window && tokens >= 1) {
        tokens--;
        const key = `${prefix}:${c}:${n++}`;
        const id = `e${n}`;
        inFlight.set(id, key);
        ws.send(JSON.stringify({ id, op: 'emit', type: 'campaign.event', payload: { key } }));
      }
      if (running && inFlight.size === 0 && tokens < 1) setTimeout(send, 20);
    };
    ws.on('open', send);
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { id?: string; ok?: boolean; error?: { code?: string } };
      const key = m.id ? inFlight.get(m.id) : undefined;
      if (!key || !m.id) return;
      inFlight.delete(m.id);
      if (m.ok) {
        counts.acked.add(key);
        lastAckAt = performance.now();
      } else {
        const code = m.error?.code ?? 'other';
        counts.refused[code] = (counts.refused[code] ?? 0) + 1;
      }
      send();
    });
    ws.on('error', () => undefined);
    closed.push(new Promise((resolve) => ws.once('close', () => {
      sockets.delete(ws);
      counts.unanswered += inFlight.size;
      inFlight.clear();
      resolve();
      // The device went away: try again shortly (it is being restarted).
      if (running) setTimeout(() => client(c), 100);
    })));
  };
  for (let c = 0; c < clients; c++) client(c);
  return {
    counts,
    get ackedCount() {
      return counts.acked.size;
    },
    get lastAckAt() {
      return lastAckAt;
    },
    async stop() {
      running = false;
      if (refill) clearInterval(refill);
      // Answers still coming are waited for a moment, then the connections close.
      await waitFor(() => [...sockets].every((ws) => ws.readyState !== WebSocket.OPEN || ws.bufferedAmount === 0), 5000, 'emits sent').catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      for (const ws of sockets) ws.close();
      await Promise.all(closed);
    },
  };
}

/** What the consumer received, against what Perch acknowledged. */
export interface Delivery {
  acked: number;
  deliveredUnique: number;
  /** Acknowledged and never delivered: must be 0. */
  lost: number;
  /** Copies received beyond the first of each key (at-least-once: allowed, counted). */
  duplicates: number;
}

export function delivery(acked: Set<string>, consumer: EventsConsumer): Delivery {
  const keys = new Map<string, number>();
  for (const e of consumer.raw) {
    const key = (e.payload as { key?: string } | null)?.key;
    if (typeof key === 'string') keys.set(key, (keys.get(key) ?? 0) + 1);
  }
  let lost = 0;
  for (const k of acked) if (!keys.has(k)) lost++;
  let duplicates = 0;
  for (const c of keys.values()) duplicates += c - 1;
  return { acked: acked.size, deliveredUnique: keys.size, lost, duplicates };
}

/** Waits until every acknowledged key arrived (or the time is up); returns the figures. */
export async function awaitDelivery(acked: Set<string>, consumer: EventsConsumer, timeoutMs: number): Promise<Delivery & { waitedMs: number }> {
  const t0 = performance.now();
  await waitFor(() => delivery(acked, consumer).lost === 0, timeoutMs, 'every acknowledged event delivered', 200).catch(() => undefined);
  return { ...delivery(acked, consumer), waitedMs: Math.round(performance.now() - t0) };
}

export const configPath = (dir: string): string => join(dir, 'perch.json');
