// Dependencies run one way (docs/design.md house style 13): runtime/ never imports cloud-sync/ or
// bin/, cloud-sync/ never imports bin/, no file reaches itself again through its imports, and
// inside runtime/ a room imports only rooms below it (RUNTIME_ORDER). Read from the TypeScript
// sources, so a new import that breaks this fails here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import test from 'node:test';
import { REPO_ROOT } from '../helpers/paths.js';

const ROOTS = ['bin', 'runtime', 'cloud-sync'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

// `import ... from 'x'`, `import 'x'`, `export ... from 'x'` (type-only ones too) and `import('x')`.
const SPECIFIER = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** Specifiers a source file imports (comments left out). */
function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  return [...code.matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2] ?? m[3]) as string);
}

/** Repo-relative path -> the repo-relative .ts files it imports (packages left out). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const root of ROOTS) {
    for (const file of sourceFiles(join(REPO_ROOT, root))) {
      const deps = importsOf(readFileSync(file, 'utf8'))
        .filter((s) => s.startsWith('.'))
        .map((s) => relative(REPO_ROOT, resolve(dirname(file), s)).replace(/\.js$/, '.ts'));
      graph.set(relative(REPO_ROOT, file), deps);
    }
  }
  return graph;
}

/** Every cycle's files, each found once (depth-first search, back edges). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') found.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return found;
}

test('the import reader sees static, type-only, re-export, side-effect and dynamic imports, not comments', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    'import {\n  c,\n  d,\n} from "./c.js";',
    "export type { E } from './e.js';",
    "import './f.js';",
    "const g = await import('./g.js');",
    "// import { h } from './h.js';",
    "/* import { i } from './i.js'; */",
    "const s = 'not an import from a string';",
  ].join('\n');
  assert.deepEqual(importsOf(src).sort(), ['../b.js', './a.js', './c.js', './e.js', './f.js', './g.js']);
});

test('the cycle finder finds a cycle through three files and none in a chain', () => {
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), [['a', 'b', 'c', 'a']]);
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), []);
});

test('every relative import names a source file that exists (so the graph below is whole)', () => {
  const graph = importGraph();
  const missing = [...graph].flatMap(([file, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${file} -> ${d}`));
  assert.deepEqual(missing, []);
});

test('runtime/ imports nothing from cloud-sync/ or bin/, and cloud-sync/ nothing from bin/', () => {
  const upward = [...importGraph()].flatMap(([file, deps]) =>
    deps
      .filter((d) => (file.startsWith('runtime/') && (d.startsWith('cloud-sync/') || d.startsWith('bin/'))) || (file.startsWith('cloud-sync/') && d.startsWith('bin/')))
      .map((d) => `${file} -> ${d}`),
  );
  assert.deepEqual(upward, []);
});

test('no import cycles among the files of bin/, runtime/ and cloud-sync/', () => {
  const graph = importGraph();
  assert.ok(graph.size > 100, `read ${graph.size} files`);
  assert.deepEqual(cycles(graph).map((c) => c.join(' -> ')), []);
});

/**
 * The rooms of runtime/, lowest first; a room may import only rooms on a lower line. The request
 * path reads down it: api -> inference -> sequences -> batching -> models -> sessions -> tensor.
 * Rooms on one line are independent of each other. Files loose in runtime/ (runtime.ts and the
 * wiring beside it) are the top.
 */
const RUNTIME_ORDER: readonly (readonly string[])[] = [
  ['base'],
  ['tensor'],
  ['sessions', 'store'],
  ['models', 'events', 'jobs'],
  ['batching', 'config', 'processing'],
  ['sequences', 'pipelines'],
  ['inference'],
  ['api'],
  ['port'],
  ['(wiring)'],
];

/** runtime/<room>/... -> room; a file loose in runtime/ -> '(wiring)'. */
function roomOf(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? (parts[1] as string) : '(wiring)';
}

function rankOf(room: string): number {
  const rank = RUNTIME_ORDER.findIndex((line) => line.includes(room));
  assert.ok(rank >= 0, `runtime/${room}/ is not placed in RUNTIME_ORDER`);
  return rank;
}

/** Imports from one runtime room into another that is not below it. */
function upward(graph: Map<string, string[]>): string[] {
  return [...graph].flatMap(([file, deps]) => {
    if (!file.startsWith('runtime/')) return [];
    const from = roomOf(file);
    return deps
      .filter((d) => d.startsWith('runtime/') && roomOf(d) !== from && rankOf(roomOf(d)) >= rankOf(from))
      .map((d) => `${file} -> ${d}`);
  });
}

test('the room order check finds an import from a lower room into a higher one', () => {
  const graph = new Map([
    ['runtime/models/a.ts', ['runtime/sessions/b.ts', 'runtime/base/c.ts']],
    ['runtime/sessions/b.ts', ['runtime/models/d.ts']],
    ['runtime/runtime.ts', ['runtime/api/e.ts']],
  ]);
  assert.deepEqual(upward(graph), ['runtime/sessions/b.ts -> runtime/models/d.ts']);
});

test('every room of runtime/ has its place in the order, and imports only rooms below it', () => {
  const graph = importGraph();
  for (const file of graph.keys()) if (file.startsWith('runtime/')) rankOf(roomOf(file));
  assert.deepEqual(upward(graph), []);
});
