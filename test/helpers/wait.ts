// The one way tests wait (docs/design.md house style 7): poll a condition, never sleep for a
// fixed time and then assert that nothing happened.

/**
 * Polls `cond` every `everyMs` (10; more for a condition that reads SQLite or scrapes metrics)
 * until it returns something truthy (returned), or fails after `timeoutMs`. `what` names the
 * condition in the failure; a function is called then, so it can tell how far things got.
 */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  timeoutMs = 20_000,
  what: string | (() => string) = 'condition',
  everyMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
