// `--set key=value` into a nested config object: dotted keys make nested objects
// (`models.overrides.silero-vad.batching.maxQueueDelayMs=2`), values are JSON when they parse
// as JSON (numbers, booleans, null, objects) and strings otherwise (`log.level=debug`).
import { duplicateKeyPath } from '../../../runtime/base/duplicate-keys.js';
import { PerchError } from '../../../runtime/base/errors.js';
import { UsageError } from './options.js';

export type JsonObject = Record<string, unknown>;

export function parseSetValue(text: string, key: readonly string[] = []): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return text;
  }
  // As config files, model.json and desired documents (runtime/base/duplicate-keys.ts): JSON.parse
  // keeps the last of a key given twice, and the published document would carry only that one.
  const twice = duplicateKeyPath(text);
  if (twice !== null) {
    throw new PerchError('PERCH_ERR_LIVE_CONFIG_INVALID', `not published: --set ${[...key, ...twice].join('.')}: key given twice (JSON keeps only the last; write it once)`);
  }
  return value;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function keyPath(flag: string, key: string): string[] {
  const path = key.split('.');
  if (path.some((p) => p === '')) throw new UsageError(`${flag} key '${key}' has an empty part`);
  // Own properties only: a key like __proto__ must not reach Object.prototype.
  if (path.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) {
    throw new UsageError(`${flag} key '${key}' names a reserved property`);
  }
  return path;
}

/** Applies one `key=value` to `target` (mutated and returned). */
export function applySet(target: JsonObject, assignment: string): JsonObject {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set needs key=value, got '${assignment}'`);
  const path = keyPath('--set', assignment.slice(0, eq));
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = Object.hasOwn(node, part) ? node[part] : undefined;
    if (!isObject(next)) node[part] = {};
    node = node[part] as JsonObject;
  }
  node[path[path.length - 1] as string] = parseSetValue(assignment.slice(eq + 1), path);
  return target;
}

/**
 * Removes one dotted key from `target` (mutated and returned), and the objects it leaves empty,
 * so `--unset models.overrides.vad.cache` can leave no `{}` behind. A key that is not there is
 * a usage error: a typo must not look like a success.
 */
export function applyUnset(target: JsonObject, key: string): JsonObject {
  const path = keyPath('--unset', key);
  const parents: JsonObject[] = [];
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = Object.hasOwn(node, part) ? node[part] : undefined;
    if (!isObject(next)) throw new UsageError(`--unset: '${key}' is not set in the desired config`);
    parents.push(node);
    node = next;
  }
  const last = path[path.length - 1] as string;
  if (!Object.hasOwn(node, last)) throw new UsageError(`--unset: '${key}' is not set in the desired config`);
  delete node[last];
  for (let i = parents.length - 1; i >= 0 && Object.keys(node).length === 0; i--) {
    const parent = parents[i] as JsonObject;
    delete parent[path[i] as string];
    node = parent;
  }
  return target;
}
