// How an abstract store suite runs one test: a fresh FakeClock, the implementation's harness made
// by its factory with the suite's limits, and the storage destroyed whatever the test did.
import { FakeClock } from '../../helpers/fake-clock.js';

export async function withHarness<L, H extends { destroy(): Promise<void> }>(
  factory: (opts: { clock: FakeClock; limits: L }) => Promise<H>,
  limits: L,
  fn: (h: H, clock: FakeClock) => Promise<void> | void,
): Promise<void> {
  const clock = new FakeClock();
  const h = await factory({ clock, limits });
  try {
    await fn(h, clock);
  } finally {
    await h.destroy();
  }
}
