// Compiles native/malloc-trim.c into dist/native/malloc-trim.node (`npm run build` runs it after
// tsc; docs/reliability.md "Memory after a burst" says what the addon is for). Optional: with no C
// compiler or no Node headers it says so in one line on stderr and the build goes on; Perch then
// runs without the trim and logs why (runtime/base/malloc-trim.ts).
//   node native/build.mjs [--required] [OUT]
// --required: fail instead (the image build, packaging/build-image.sh). OUT: the output file
// (default dist/native/malloc-trim.node). Environment: CC (default cc; the image build passes the
// cross compiler), npm_config_nodedir (Node's headers under <dir>/include/node; default the running
// Node's own, <prefix>/include/node).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const required = args.includes('--required');
const out = path.resolve(args.find((a) => !a.startsWith('--')) ?? path.join(here, '..', 'dist', 'native', 'malloc-trim.node'));
const source = path.join(here, 'malloc-trim.c');
const cc = process.env.CC || 'cc';
const nodedir = process.env.npm_config_nodedir;
const headers = nodedir ? path.join(path.resolve(nodedir), 'include', 'node') : path.resolve(process.execPath, '..', '..', 'include', 'node');

function skip(reason) {
  const line = `native/build.mjs: malloc-trim addon not built (${reason}); Perch runs without malloc_trim after bursts`;
  if (required) {
    console.error(line.replace('; Perch runs without malloc_trim after bursts', ''));
    process.exit(1);
  }
  console.error(line);
  process.exit(0);
}

if (!existsSync(path.join(headers, 'node_api.h'))) skip(`no Node headers: ${path.join(headers, 'node_api.h')} is missing; set npm_config_nodedir`);
mkdirSync(path.dirname(out), { recursive: true });
try {
  execFileSync(cc, ['-O2', '-shared', '-fPIC', '-Wall', '-Werror', `-I${headers}`, '-o', out, source], { stdio: ['ignore', 'ignore', 'pipe'] });
} catch (err) {
  if (err.code === 'ENOENT') skip(`no C compiler: ${cc} not found`);
  const stderr = String(err.stderr ?? '').trim().split('\n').slice(0, 3).join(' | ');
  skip(`${cc} failed: ${stderr || err.message}`);
}
