// How many chunk requests of a device serve looks at (docs/fleet.md "serve", "A device's share").
// Every request costs a credit, checked before its JSON is parsed or the device's desired state
// read; every chunk sent to the device gives one back, and each device gets `refillPerSecond` more
// a second, up to `max`. A device's agent asks for a chunk as each one arrives (a window of
// `cloud.download.windowChunks`, 16), so it is never more than its window ahead; one that floods
// is looked at only as fast as its own chunks go out, and the rest costs serve the MQTT packet
// alone. (Chunks queued once per device, chunk-share.ts, do not bound this: a device asking 16,000
// times a second for the whole of a small model never fills its queue, and each request cost a
// parse, a store read and a stat: 9,000 a second took serve's share of two loaded cores.)
export class RequestCredit {
  private readonly credit = new Map<string, { left: number; at: number }>();
  /** Size of the map when it was last swept of devices back at `max`. */
  private sweptAt = 1024;

  constructor(
    readonly max: number,
    private readonly refillPerSecond = 10,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes a credit for one request of the device; false (nothing taken) when it has none. */
  take(deviceId: string): boolean {
    const c = this.current(deviceId);
    if (c.left < 1) return false;
    c.left -= 1;
    return true;
  }

  /** A chunk went out to the device. */
  refund(deviceId: string): void {
    const c = this.credit.get(deviceId);
    if (!c) return;
    c.left = Math.min(this.max, c.left + 1);
  }

  get devices(): number {
    return this.credit.size;
  }

  private current(deviceId: string): { left: number; at: number } {
    const t = this.now();
    let c = this.credit.get(deviceId);
    if (c) {
      c.left = Math.min(this.max, c.left + ((t - c.at) / 1000) * this.refillPerSecond);
      c.at = t;
      return c;
    }
    if (this.credit.size + 1 >= 2 * this.sweptAt) this.sweep(t);
    c = { left: this.max, at: t };
    this.credit.set(deviceId, c);
    return c;
  }

  /** Devices back at `max` need no entry (a new one starts there): at most one sweep per doubling. */
  private sweep(t: number): void {
    for (const [id, c] of this.credit) if (c.left + ((t - c.at) / 1000) * this.refillPerSecond >= this.max) this.credit.delete(id);
    this.sweptAt = Math.max(1024, this.credit.size);
  }
}
