// The one way tests wait (docs/design.md house style 7): poll a condition, never sleep for a
// fixed time and then assert that nothing happened.

/** Polls `cond` every 10 ms until it returns something truthy (returned), or fails after `timeoutMs`. */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs = 20_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
