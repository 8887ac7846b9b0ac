// Issue 20: the memory-mapping and futex system calls of Perch serving real-time VAD streams, per
// 1,000 chunks, on its main thread and on all its other threads, and the sizes of the main
// thread's mmaps (docs/benchmarks.md, "Batch-sized buffers used again"). Perch runs as npm start
// runs it (its malloc tunables and node flags; --bare: without them), this checkout's or, with
// --against, another built checkout's (its CLI and models/); after --warmup seconds of the same
// streams, `strace -f` (installed separately) follows every thread over --seconds more.
// The counts move with glibc's heap (a large block comes from a free chunk when there is one,
// else from mmap) and with the JIT still compiling (V8's 32 KiB zone segments on its platform
// threads): compare runs started alike, several of each, interleaved.
//   node dist/bench/stream-syscalls.js [--streams 150] [--seconds 4] [--warmup 8] [--against <checkout>] [--bare]
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT, SHIPPED_MODELS } from '../test/helpers/paths.js';
import { flag, numberFlag } from './lib/args.js';
import { NPM_START_ENV, NPM_START_NODE_ARGS, startPerch } from './lib/perch-server.js';

const STREAMS = numberFlag('streams', 150);
const SECONDS = numberFlag('seconds', 4);
const WARMUP = numberFlag('warmup', 8);
const AGAINST = flag('against');
const BARE = process.argv.includes('--bare');
const GENERATOR = join(REPO_ROOT, 'dist', 'bench', 'streams.js');

function generate(url: string, seconds: number): Promise<{ p50: number; p99: number; behind: number }> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [GENERATOR, '--generate', url, String(STREAMS), String(seconds), 'binary'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? ok(JSON.parse(out.trim()) as { p50: number; p99: number; behind: number }) : fail(new Error(`generator exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const root = AGAINST ? resolve(AGAINST) : REPO_ROOT;
  const cli = join(root, 'dist', 'bin', 'perch.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing (build that checkout first)`);
  const server = await startPerch({
    repository: AGAINST ? join(root, 'models') : SHIPPED_MODELS, command: [cli, 'serve'],
    ...(BARE ? {} : { env: NPM_START_ENV, nodeArgs: NPM_START_NODE_ARGS }),
  });
  const log = join(tmpdir(), `perch-bench-strace-${server.pid}.txt`);
  try {
    await generate(server.wsUrl, WARMUP);
    const strace = spawn('strace', ['-f', '-e', 'trace=mmap,munmap,futex', '-e', 'signal=none', '-o', log, '-p', String(server.pid)], { stdio: 'ignore' });
    const attached = new Promise<void>((ok, fail) => {
      strace.once('error', fail);
      setTimeout(ok, 1000); // strace attaches to every thread before the measured window
    });
    await attached;
    const items = () => server.metric('perch_inference_count_total', { model: 'silero-vad' });
    const batches = () => server.metric('perch_inference_exec_count_total', { model: 'silero-vad' });
    const [i0, b0] = [await items(), await batches()];
    const r = await generate(server.wsUrl, SECONDS);
    const [chunks, runs] = [(await items()) - i0, (await batches()) - b0];
    strace.kill('SIGINT');
    await new Promise((ok) => strace.once('exit', ok));
    const counts = new Map<string, number>();
    const sizes = new Map<string, number>();
    for (const line of readFileSync(log, 'utf8').split('\n')) {
      const m = /^(\d+)\s+(mmap|munmap|futex)\((\S+?),? (\d+)?/.exec(line);
      if (!m) continue;
      const who = m[1] === String(server.pid) ? 'main thread' : 'other threads';
      counts.set(`${who} ${m[2]}`, (counts.get(`${who} ${m[2]}`) ?? 0) + 1);
      if (who === 'main thread' && m[2] === 'mmap' && m[3] === 'NULL') sizes.set(m[4] ?? '?', (sizes.get(m[4] ?? '?') ?? 0) + 1);
    }
    console.log(`# ${AGAINST ? root : 'this checkout'}${BARE ? ', bare' : ", npm start's env and flags"}: ${STREAMS} streams, ${SECONDS} s after ${WARMUP} s; p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} ms, behind ${r.behind}; ${chunks} chunks in ${runs} batches (average ${(chunks / runs).toFixed(1)}); load ${loadavg()[0]?.toFixed(1)}`);
    for (const [k, n] of [...counts].sort()) console.log(`${k.padEnd(22)} ${String(n).padStart(7)}  ${((n * 1000) / chunks).toFixed(1).padStart(7)} per 1,000 chunks`);
    console.log(`main thread's mmaps by size (bytes x count): ${[...sizes].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} x ${n}`).join(', ')}`);
  } finally {
    rmSync(log, { force: true });
    await server.stop();
  }
}

await main();
