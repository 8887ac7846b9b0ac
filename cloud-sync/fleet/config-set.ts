// `--set key=value` into a nested config object: dotted keys make nested objects
// (`models.overrides.silero-vad.batching.maxQueueDelayMs=2`), values are JSON when they parse
// as JSON (numbers, booleans, null, objects) and strings otherwise (`log.level=debug`).
import { UsageError } from './options.js';

export type JsonObject = Record<string, unknown>;

export function parseSetValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies one `key=value` to `target` (mutated and returned). */
export function applySet(target: JsonObject, assignment: string): JsonObject {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set needs key=value, got '${assignment}'`);
  const path = assignment.slice(0, eq).split('.');
  if (path.some((p) => p === '')) throw new UsageError(`--set key '${assignment.slice(0, eq)}' has an empty part`);
  // Own properties only: a key like __proto__ must not reach Object.prototype.
  if (path.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) {
    throw new UsageError(`--set key '${assignment.slice(0, eq)}' names a reserved property`);
  }
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = Object.hasOwn(node, part) ? node[part] : undefined;
    if (!isObject(next)) node[part] = {};
    node = node[part] as JsonObject;
  }
  node[path[path.length - 1] as string] = parseSetValue(assignment.slice(eq + 1));
  return target;
}
