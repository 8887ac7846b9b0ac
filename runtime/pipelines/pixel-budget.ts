// Decoded pixels in flight, process-wide (docs/models.md, "Pipelines"; issue 12). image.decode's
// maxPixels bounds one image, not the images decoded together: sixteen 39.7 Mpx PNGs of 128 KB
// each were 16 x 119 MB of RGB and their copies at once. An image pipeline takes its image's pixels
// (read from the header, before decoding) from this budget and gives them back with its answer.
// Requests that do not fit wait in order (first come, first decoded: a big image is not passed by
// small ones for ever), at most maxWaiting of them; an image larger than the whole budget could
// never run and is refused from its header.
import { PerchError } from '../base/errors.js';
import type { WorkMeter } from '../base/work-meter.js';

interface Waiter { pixels: number; grant: () => void }

/** A waiter whose client went away: it leaves the line (pipeline-executor.ts). */
export function goneError(what: string): PerchError {
  return new PerchError('PERCH_ERR_CLIENT_GONE', `${what}: the client closed its connection while its image waited for decoded-pixel room; it was not decoded`);
}

/** Called with the pixels held after every change (tests observe the bound with it). */
export type PixelObserver = (held: number) => void;

export class PixelBudget {
  private held = 0;
  private readonly waiters: Waiter[] = [];
  private refused = 0;
  /** Sees every change of the pixels held (a test's check of the bound). */
  observer: PixelObserver | null = null;

  /** `work`: told of every image's pixels (as RGB bytes) when taken: the idle collector's view of decoding (base/work-meter.ts). */
  constructor(readonly limit: number, readonly maxWaiting: number, private readonly work: WorkMeter | null = null) {}

  /** Pixels taken by images being decoded or used now. */
  get heldPixels(): number {
    return this.held;
  }

  /** Pixels of the images waiting for their turn. */
  get waitingPixels(): number {
    return this.waiters.reduce((n, w) => n + w.pixels, 0);
  }

  get waitingCount(): number {
    return this.waiters.length;
  }

  /** Requests refused because the waiting line was full, since start. */
  get refusedCount(): number {
    return this.refused;
  }

  /**
   * Takes `pixels` once they fit; resolves to the function that gives them back (it may be
   * called more than once: only the first call counts). A waiter whose `signal` aborts (its
   * client went away) leaves the line with PERCH_ERR_CLIENT_GONE: 16 clients that posted big
   * images and left were decoded and run one after the other all the same, and the next client
   * waited 19 s behind them (red-team pass).
   */
  async take(pixels: number, what: string, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw goneError(what);
    if (pixels > this.limit) {
      throw new PerchError('PERCH_ERR_IMAGE_TOO_LARGE', `${what} is ${pixels} pixels, over the ${this.limit} pixels all images may hold at once (models.maxPixelsInFlight)`);
    }
    if (this.waiters.length > 0 || this.held + pixels > this.limit) {
      if (this.waiters.length >= this.maxWaiting) {
        this.refused++;
        throw new PerchError('PERCH_ERR_QUEUE_FULL', `${what}: ${this.waiters.length} images already wait for decoded-pixel room (models.maxPixelsInFlight); retry later`);
      }
      await new Promise<void>((grant, reject) => {
        const w: Waiter = { pixels, grant };
        this.waiters.push(w);
        if (!signal) return;
        const leave = (): void => {
          const i = this.waiters.indexOf(w);
          if (i < 0) return; // granted already
          this.waiters.splice(i, 1);
          this.admit(); // those behind it may fit now
          reject(goneError(what));
        };
        signal.addEventListener('abort', leave, { once: true });
        w.grant = () => {
          signal.removeEventListener('abort', leave);
          grant();
        };
      });
    } else {
      this.add(pixels);
    }
    this.work?.add(pixels * 3);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.add(-pixels);
      this.admit();
    };
  }

  private add(pixels: number): void {
    this.held += pixels;
    this.observer?.(this.held);
  }

  /** Grants the waiters at the head of the line that fit now, in order. */
  private admit(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0] as Waiter;
      if (this.held + w.pixels > this.limit) return;
      this.waiters.shift();
      this.add(w.pixels);
      w.grant();
    }
  }
}
