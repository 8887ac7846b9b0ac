// What gRPC costs a device in memory (docs/grpc.md: the library is loaded only when configured).
// 1. `perch serve` (shipped models) idle RSS without gRPC and with server.grpcPort, alternating
//    round by round, each read after the process has been idle for SETTLE_MS.
// 2. The libraries alone: RSS of a bare node process vs one that loaded @grpc/grpc-js and
//    @grpc/proto-loader and parsed proto/inference.proto.
// Run: node dist/bench/grpc-memory.js   (PERCH_BENCH_ROUNDS to change the rounds)
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildRepository, startPerch } from './lib/perch-server.js';
import { machine, saveSection } from './lib/results.js';
import { median, printTable } from './lib/stats.js';
import { PROTO } from '../test/grpc/client.js';

const ROUNDS = Number(process.env.PERCH_BENCH_ROUNDS ?? 3);
const SETTLE_MS = 3000;
const run = promisify(execFile);

async function idleRssKiB(grpc: boolean): Promise<number> {
  const server = await startPerch({
    repository: buildRepository(['pp-ocr-cls', 'silero-vad']), ownRepository: true,
    ...(grpc ? { config: { server: { grpcPort: 0 } } } : {}),
  });
  try {
    if (grpc && server.grpcPort === null) throw new Error('gRPC did not start');
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return server.rssKiB();
  } finally {
    await server.stop();
  }
}

async function nodeRssKiB(loadGrpc: boolean): Promise<number> {
  const script = loadGrpc
    ? `const [g, l] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader')]); l.loadSync(${JSON.stringify(PROTO)}, { keepCase: true }); new g.Server();`
    : '';
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', `${script} await new Promise((r) => setTimeout(r, 500)); console.log(process.memoryUsage().rss);`]);
  return Number(stdout.trim()) / 1024;
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`# gRPC memory: ${m.nproc} cpus (${m.cpuModel}), node ${m.node}, load ${m.loadavg1mAtStart}; ${ROUNDS} rounds, medians`);
  const without: number[] = [];
  const withGrpc: number[] = [];
  const bare: number[] = [];
  const libs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    without.push(await idleRssKiB(false));
    withGrpc.push(await idleRssKiB(true));
    bare.push(await nodeRssKiB(false));
    libs.push(await nodeRssKiB(true));
  }
  const mib = (k: number): string => (k / 1024).toFixed(1);
  const rows = {
    perchWithoutMiB: median(without) / 1024,
    perchWithGrpcMiB: median(withGrpc) / 1024,
    nodeBareMiB: median(bare) / 1024,
    nodeWithGrpcLibsMiB: median(libs) / 1024,
  };
  printTable('Idle RSS (MiB, medians)', ['process', 'without gRPC', 'with gRPC', 'difference'], [
    ['perch serve (pp-ocr-cls + silero-vad)', mib(median(without)), mib(median(withGrpc)), mib(median(withGrpc) - median(without))],
    ['bare node vs grpc-js + proto-loader + proto parsed', mib(median(bare)), mib(median(libs)), mib(median(libs) - median(bare))],
  ]);
  saveSection('grpcMemory', { rounds: ROUNDS, settleMs: SETTLE_MS, ...rows, samplesKiB: { without, withGrpc, bare, libs } }, 'node dist/bench/grpc-memory.js');
}

await main();
