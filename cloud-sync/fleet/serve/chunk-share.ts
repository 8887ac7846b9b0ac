// Each device's share of serve's chunk answers (docs/fleet.md "serve", "A device's share").
// Chunks a device asked for wait in a queue of its own, at most `maxQueuedPerDevice` of them (a
// chunk already waiting for the device is not queued twice); devices take turns, one chunk each;
// and only `maxInFlightBytes` of chunks (at least one chunk) are published and not yet
// acknowledged by the broker at a time, so the bytes serve holds (MQTT.js keeps a QoS 1 publish
// until its PUBACK) and the bytes ahead of a device's next chunk on the connection stay bounded.
// Before, every request was read and published at once in arrival order: a device asking for a
// whole 4.7 MB model over and over, 20 requests unacknowledged at a time, held another device's
// download of the same file for more than 70 s (106 ms alone) and grew serve to 12,705 MiB
// (bench/fleet-share.ts).

/** A model version a device has chunks queued of, with what sizing its chunks needs. */
interface Slot {
  id: number;
  name: string;
  version: number;
  size: number;
  chunkSize: number;
  /** Chunks of it in the queue. */
  queued: number;
}

interface Wanted {
  slot: Slot;
  index: number;
}

class DeviceQueue {
  readonly items: Wanted[] = [];
  /** slot id * 2^32 + index of every queued chunk: a chunk asked for twice is queued once. */
  readonly keys = new Set<number>();
  readonly slots = new Map<string, Slot>();
  private nextSlot = 0;

  slot(name: string, version: number, size: number, chunkSize: number): Slot {
    const key = `${name}\u0000${version}`;
    let s = this.slots.get(key);
    // Sizing as of this request: a version pushed again with another chunk size starts a new slot.
    if (s && (s.size !== size || s.chunkSize !== chunkSize)) s = undefined;
    if (!s) {
      s = { id: this.nextSlot++, name, version, size, chunkSize, queued: 0 };
      this.slots.set(key, s);
    }
    return s;
  }

  shift(): Wanted | undefined {
    const w = this.items.shift();
    if (!w) return undefined;
    this.keys.delete(w.slot.id * 2 ** 32 + w.index);
    if (--w.slot.queued === 0) {
      const key = `${w.slot.name}\u0000${w.slot.version}`;
      if (this.slots.get(key) === w.slot) this.slots.delete(key);
    }
    return w;
  }
}

export interface Queued {
  /** Chunks added to the device's queue. */
  queued: number;
  /** Chunks that were already waiting in it. */
  duplicates: number;
  /** Chunks beyond the device's room: dropped. */
  refused: number;
}

export interface ChunkToSend {
  deviceId: string;
  name: string;
  version: number;
  index: number;
  /** Its length by the spec it was asked for under. */
  bytes: number;
}

export interface ChunkShareOptions {
  maxQueuedPerDevice: number;
  maxInFlightBytes: number;
  /** A chunk sent to a device is not queued for it again for this long (default 5 s). */
  resendAfterMs?: number;
  now?: () => number;
  /** Reads and publishes one chunk; resolves once the broker acknowledged it (or it failed). */
  send(chunk: ChunkToSend): Promise<void>;
}

/**
 * An agent asks for a chunk again only when nothing arrived for its chunk timeout (10 s) or after
 * a reconnect, when its persistent session still gets what was sent meanwhile: within this, a
 * request for a chunk just sent to the device is a duplicate (a device asking for the same file
 * over and over got it sent over and over, half of serve's bandwidth and CPU).
 */
export const RESEND_AFTER_MS = 5000;

export class ChunkShare {
  /** Devices with chunks waiting, in turn order: the first sends next, then goes to the back. */
  private readonly turns = new Map<string, DeviceQueue>();
  private inFlightBytes = 0;
  private inFlight = 0;
  private waiting = 0;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Chunks sent in the last resendAfterMs, per device (name NUL version NUL index -> when). */
  private readonly recent = new Map<string, Map<string, number>>();
  /** The same, in the order sent, to forget them in that order. */
  private readonly sentLog: Array<{ deviceId: string; key: string; at: number }> = [];
  private sentHead = 0;
  private readonly resendAfterMs: number;
  private readonly now: () => number;

  constructor(private readonly o: ChunkShareOptions) {
    this.resendAfterMs = o.resendAfterMs ?? RESEND_AFTER_MS;
    this.now = o.now ?? (() => performance.now());
  }

  get maxQueuedPerDevice(): number {
    return this.o.maxQueuedPerDevice;
  }

  /** Chunks waiting (all devices) and chunks published, not yet acknowledged. */
  get state(): { waiting: number; devices: number; inFlight: number; inFlightBytes: number } {
    return { waiting: this.waiting, devices: this.turns.size, inFlight: this.inFlight, inFlightBytes: this.inFlightBytes };
  }

  /** How many more chunks the device may have waiting. */
  room(deviceId: string): number {
    return this.o.maxQueuedPerDevice - (this.turns.get(deviceId)?.items.length ?? 0);
  }

  /** Queues chunks `from`..`from+count-1` (range-checked by the caller) of a version for a device. */
  add(deviceId: string, spec: { name: string; version: number; size: number; chunkSize: number }, from: number, count: number): Queued {
    const out: Queued = { queued: 0, duplicates: 0, refused: 0 };
    if (this.closed) return { ...out, refused: count };
    let q = this.turns.get(deviceId);
    const created = !q;
    q ??= new DeviceQueue();
    const slot = q.slot(spec.name, spec.version, spec.size, spec.chunkSize);
    this.forgetSent();
    const sent = this.recent.get(deviceId);
    for (let index = from; index < from + count; index++) {
      const k = slot.id * 2 ** 32 + index;
      if (q.keys.has(k) || sent?.has(`${spec.name}\u0000${spec.version}\u0000${index}`)) {
        out.duplicates++;
        continue;
      }
      if (q.items.length >= this.o.maxQueuedPerDevice) {
        out.refused = from + count - index - countQueuedFrom(q, slot, sent, index, from + count);
        out.duplicates += from + count - index - out.refused;
        break;
      }
      q.keys.add(k);
      q.items.push({ slot, index });
      slot.queued++;
      out.queued++;
    }
    this.waiting += out.queued;
    const key = `${spec.name}\u0000${spec.version}`;
    if (slot.queued === 0 && q.slots.get(key) === slot) q.slots.delete(key);
    if (created && q.items.length > 0) this.turns.set(deviceId, q);
    this.pump();
    return out;
  }

  /** Forgets what is waiting; resolves once nothing is in flight. */
  async close(): Promise<void> {
    this.closed = true;
    this.turns.clear();
    this.recent.clear();
    this.sentLog.length = 0;
    this.sentHead = 0;
    this.waiting = 0;
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private noteSent(deviceId: string, key: string): void {
    const at = this.now();
    let m = this.recent.get(deviceId);
    if (!m) this.recent.set(deviceId, (m = new Map()));
    m.set(key, at);
    this.sentLog.push({ deviceId, key, at });
  }

  /** Forgets chunks sent more than resendAfterMs ago: a device asking for them again gets them. */
  private forgetSent(): void {
    const before = this.now() - this.resendAfterMs;
    while (this.sentHead < this.sentLog.length) {
      const e = this.sentLog[this.sentHead] as { deviceId: string; key: string; at: number };
      if (e.at > before) break;
      this.sentHead++;
      const m = this.recent.get(e.deviceId);
      if (m?.get(e.key) === e.at) {
        m.delete(e.key);
        if (m.size === 0) this.recent.delete(e.deviceId);
      }
    }
    if (this.sentHead > 1024 && this.sentHead * 2 > this.sentLog.length) {
      this.sentLog.splice(0, this.sentHead);
      this.sentHead = 0;
    }
  }

  private pump(): void {
    while (!this.closed && this.turns.size > 0 && (this.inFlight === 0 || this.inFlightBytes < this.o.maxInFlightBytes)) {
      const [deviceId, q] = this.turns.entries().next().value as [string, DeviceQueue];
      const w = q.shift() as Wanted;
      this.waiting--;
      this.turns.delete(deviceId);
      if (q.items.length > 0) this.turns.set(deviceId, q); // to the back of the line
      this.noteSent(deviceId, `${w.slot.name}\u0000${w.slot.version}\u0000${w.index}`);
      const bytes = Math.min(w.slot.chunkSize, w.slot.size - w.index * w.slot.chunkSize);
      this.inFlight++;
      this.inFlightBytes += bytes;
      void this.o.send({ deviceId, name: w.slot.name, version: w.slot.version, index: w.index, bytes }).finally(() => {
        this.inFlight--;
        this.inFlightBytes -= bytes;
        if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
        this.pump();
      });
    }
  }
}

/** Of indices `index`..`end-1`, how many are already queued for the device under `slot`, or were just sent to it. */
function countQueuedFrom(q: DeviceQueue, slot: Slot, sent: Map<string, number> | undefined, index: number, end: number): number {
  let n = 0;
  for (let i = index; i < end; i++) if (q.keys.has(slot.id * 2 ** 32 + i) || sent?.has(`${slot.name}\u0000${slot.version}\u0000${i}`)) n++;
  return n;
}
