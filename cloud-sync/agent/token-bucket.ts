// A token bucket on the injected clock: the uploader spends one token per event, the model
// download one per byte. Capacity is one second of rate (a short burst, never a backlog's worth),
// and a rate of 0 means no cap (the config's "0 = no cap").
import type { Clock } from '../../runtime/base/clock.js';

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly clock: Clock,
    private rate: number,
    private minCapacity = 1,
  ) {
    this.tokens = this.capacity;
    this.last = clock.now();
  }

  /** Live config may change the rate; tokens already earned are kept (capped). */
  setRate(rate: number, minCapacity = this.minCapacity): void {
    if (rate === this.rate && minCapacity === this.minCapacity) return;
    this.refill();
    this.rate = rate;
    this.minCapacity = minCapacity;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  get unlimited(): boolean {
    return this.rate <= 0;
  }

  /** Whole tokens available now (Infinity without a cap). */
  available(): number {
    if (this.unlimited) return Infinity;
    this.refill();
    return Math.floor(this.tokens);
  }

  /** Spends `n` tokens; callers take only what `available()` said (or accept going negative). */
  take(n: number): void {
    if (this.unlimited) return;
    this.refill();
    this.tokens -= n;
  }

  /** Milliseconds until `n` tokens (at most one capacity) are there; 0 when they already are. */
  waitMs(n: number): number {
    if (this.unlimited) return 0;
    this.refill();
    const need = Math.min(n, this.capacity) - this.tokens;
    return need <= 0 ? 0 : Math.ceil((need / this.rate) * 1000);
  }

  private get capacity(): number {
    return Math.max(this.rate, this.minCapacity);
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = now - this.last;
    this.last = now;
    if (elapsed > 0 && this.rate > 0) this.tokens = Math.min(this.capacity, this.tokens + (elapsed / 1000) * this.rate);
  }
}
