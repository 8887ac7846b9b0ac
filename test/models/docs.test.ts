// docs/models.md documents every key of model.json.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { modelConfigSchema } from '../../runtime/models/model-config.js';
import { REPO_ROOT } from '../helpers/paths.js';

function keys(shape: Record<string, unknown>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(shape)) {
    // Nested objects (batching, session, cache) are documented key by key.
    let inner = v as { def?: { innerType?: unknown; shape?: unknown; type?: string }; shape?: Record<string, unknown> };
    while (inner.def?.innerType) inner = inner.def.innerType as typeof inner;
    if (inner.def?.type === 'object' && inner.shape) out.push(...keys(inner.shape, `${prefix}${k}.`));
    else out.push(`${prefix}${k}`);
  }
  return out;
}

test('docs/models.md documents every model.json key', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'models.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `([a-zA-Z.[\]]+)` \|/gm)].map((m) => m[1] as string));
  const schema = keys((modelConfigSchema as unknown as { def: { in?: { shape: Record<string, unknown> }; shape?: Record<string, unknown> } }).def.in?.shape
    ?? (modelConfigSchema as unknown as { shape: Record<string, unknown> }).shape);
  for (const k of schema) assert.ok(documented.has(k), `model.json key ${k} is not in docs/models.md`);
  for (const k of documented) if (!k.includes('[]')) assert.ok(schema.includes(k), `docs/models.md documents ${k}, which the schema does not have`);
});
