// docs/config.md documents every key of the config schema, with the schema's default, and
// the example config is valid.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { ENV_OVERRIDES, loadConfig } from '../../runtime/config/load.js';
import { configSchema } from '../../runtime/config/schema.js';
import { REPO_ROOT } from '../helpers/paths.js';

interface JsonSchemaNode {
  type?: string;
  properties?: Record<string, JsonSchemaNode>;
  default?: unknown;
}

/** Leaf keys of the schema (objects with properties are walked, everything else is a leaf). */
function leaves(node: JsonSchemaNode, path: string[] = [], out = new Map<string, unknown>()): Map<string, unknown> {
  if (node.type === 'object' && node.properties) {
    for (const [k, v] of Object.entries(node.properties)) leaves(v, [...path, k], out);
  } else {
    out.set(path.join('.'), node.default);
  }
  return out;
}

// Defaults that depend on the machine, documented in words.
const MACHINE_DEFAULTS = new Set(['device.id', 'models.repository']);

test('docs/config.md documents every config key with its default', () => {
  const schema = leaves(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode);
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'config.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const line of doc.split('\n')) {
    const m = /^\| `([a-zA-Z.]+)` \| [^|]+ \| ([^|]+) \|/.exec(line);
    if (m) rows.set(m[1] as string, (m[2] as string).trim());
  }
  assert.deepEqual([...rows.keys()].sort(), [...schema.keys()].sort(), 'documented keys = schema keys');
  for (const [key, def] of schema) {
    if (MACHINE_DEFAULTS.has(key)) continue;
    assert.equal(rows.get(key), `\`${JSON.stringify(def)}\``, `default of ${key}`);
  }
});

test('the example config in docs/examples is valid', () => {
  const c = loadConfig({ configPath: join(REPO_ROOT, 'docs', 'examples', 'perch.json'), env: {} });
  assert.equal(c.device.id, 'pi-kitchen-01');
});

const KIND_WORDS = { string: 'string', number: 'whole number', path: 'path', boolean: '`true` or `false`' } as const;

test('the environment variable table of docs/config.md is the code\'s list, one well-formed row each', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'config.md'), 'utf8');
  const start = doc.indexOf('## Environment variables');
  assert.ok(start >= 0, 'the section is there');
  const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
  const tableLines = section.split('\n').filter((l) => l.startsWith('|')).slice(2);
  const rows = new Map<string, { sets: string; value: string }>();
  for (const line of tableLines) {
    const m = /^\| `(PERCH_[A-Z_]+)` \| ([^|]+) \| ([^|]+) \|$/.exec(line);
    assert.ok(m, `a row of three cells naming one variable: ${line}`);
    assert.ok(!rows.has(m[1] as string), `${m[1]} listed once`);
    rows.set(m[1] as string, { sets: (m[2] as string).trim(), value: (m[3] as string).trim() });
  }
  assert.deepEqual([...rows.keys()].sort(), ['PERCH_CONFIG', ...ENV_OVERRIDES.map((e) => e.env)].sort(), 'documented variables = the code\'s');
  for (const e of ENV_OVERRIDES) {
    const row = rows.get(e.env);
    assert.ok(row?.sets.startsWith(`\`${e.path.join('.')}\``), `${e.env} sets ${e.path.join('.')}: ${row?.sets}`);
    assert.equal(row?.value, KIND_WORDS[e.kind], `${e.env} value`);
  }
});
