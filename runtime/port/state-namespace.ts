// A module's own part of the state store: every key it uses is stored under `prefix`, and keys()
// lists only those (prefix taken off). So the agent's keys live with the agent, and no agent key
// can collide with, read or overwrite one of the runtime's (runtime/store/state-store.ts).
import type { StateStore } from '../store/state-store.js';

export function stateNamespace(state: StateStore, prefix: string): StateStore {
  return {
    get: <T>(key: string) => state.get<T>(prefix + key),
    set: (key, value) => state.set(prefix + key, value),
    delete: (key) => state.delete(prefix + key),
    keys: () => state.keys().filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)),
  };
}

/**
 * Moves documents stored under old top-level keys into their new place (old -> new full key), so a
 * device upgraded in place keeps them. Written before deleted: a crash in between leaves both,
 * and the next start only deletes the old one. A key already at its new place is never replaced.
 */
export function moveKeys(state: StateStore, moves: Readonly<Record<string, string>>): string[] {
  const moved: string[] = [];
  for (const [from, to] of Object.entries(moves)) {
    const doc = state.get(from);
    if (doc === undefined) continue;
    if (state.get(to) === undefined) state.set(to, doc);
    state.delete(from);
    moved.push(from);
  }
  return moved;
}
