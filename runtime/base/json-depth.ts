// How deeply a parsed JSON value nests. JSON.parse takes any depth (V8's parser does not recurse),
// but JSON.stringify and every other recursive reader of the value do: a 40 KB `[[[[...]]]]`
// overflows the stack. In `perch fleet serve` such an event payload made the store's write throw,
// the message got no PUBACK and held one of the broker's in-flight slots, and 160 of them from one
// device stopped every device's events (docs/fleet.md "Group commit"). Values are looked at once,
// right after JSON.parse, without recursion: an explicit stack, objects and arrays only, stopping
// at the first level past the bound.

/** Levels of objects and arrays an MQTT message of docs/protocol.md section 5 may nest (the root is 1). */
export const MAX_JSON_DEPTH = 128;
/**
 * Levels an event payload may nest on a device (the outbox refuses deeper ones): inside an events
 * batch (`{"events":[{"payload":...}]}`, 3 levels) it stays far within MAX_JSON_DEPTH, so a
 * device never sends a batch the fleet refuses.
 */
export const MAX_EVENT_PAYLOAD_DEPTH = 64;

/** True when `value` holds objects or arrays more than `max` levels deep (a scalar is 0 levels). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const nodes: object[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop() as object;
    const depth = depths.pop() as number;
    if (depth > max) return true;
    const children = Array.isArray(node) ? (node as unknown[]) : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}
