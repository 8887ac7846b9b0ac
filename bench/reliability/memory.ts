// Where a Perch process's resident memory is (docs/reliability.md "Where the memory goes"):
// V8's heap and the memory V8 counts as external (ArrayBuffers: bodies, frames, tensors) from
// Perch's own /metrics, and from /proc/<pid>/smaps the main C heap ([heap], glibc's main arena,
// grown by brk), the other anonymous mappings (V8's heap pages, mmap'ed blocks of 64 KiB and
// more, the other malloc arenas: onnxruntime's worker threads) and file-backed pages (code).
import { readFileSync } from 'node:fs';
import { sumMetric } from '../lib/perch-server.js';

export interface MemoryBreakdown {
  rssMB: number;
  /** V8 heap in use / reserved. */
  v8UsedMB: number;
  v8TotalMB: number;
  /**
   * The main thread's young generation (V8's new space, both semi-spaces), reserved: part of
   * v8TotalMB. It grows under load by survival and shrinks only at a memory-reducing collection,
   * so it is the usual step in a soak's RSS (docs/reliability.md, "Where the memory goes").
   */
  v8YoungMB: number;
  /** Memory V8 counts outside its heap (ArrayBuffers and other external allocations). */
  externalMB: number;
  /** glibc's main arena ([heap] in smaps). */
  mainHeapMB: number;
  /** Anonymous mappings other than [heap] and the stacks. */
  anonMB: number;
  /** File-backed pages (node, onnxruntime and sharp code, the model files). */
  fileMB: number;
  /** What the client budget held (perch_client_bytes): frames being handled, answers not yet written. */
  clientMB: number;
}

const toMB = (kib: number): number => Math.round((kib * 1024) / 1e6);

/** Resident KiB of smaps, split by mapping kind. */
export function smapsSplit(pid: number): { heapKiB: number; anonKiB: number; fileKiB: number } {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  let heapKiB = 0;
  let anonKiB = 0;
  let fileKiB = 0;
  let kind: 'heap' | 'anon' | 'file' | 'other' = 'other';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const path = head[2] ?? '';
      kind = path === '[heap]' ? 'heap' : path === '' ? 'anon' : path.startsWith('/') ? 'file' : 'other';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const kib = Number(rss[1]);
    if (kind === 'heap') heapKiB += kib;
    else if (kind === 'anon') anonKiB += kib;
    else if (kind === 'file') fileKiB += kib;
  }
  return { heapKiB, anonKiB, fileKiB };
}

export async function memoryBreakdown(pid: number, baseUrl: string, rssKiB: number): Promise<MemoryBreakdown> {
  const split = smapsSplit(pid);
  let text = '';
  try {
    text = await (await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  } catch {
    // a process too busy to answer: the smaps figures still say something
  }
  // NaN for a metric the server does not have (the campaign's minimal servers: sides.ts), not 0.
  const metric = (name: string, labels: Record<string, string> = {}): number =>
    (new RegExp(`^${name}[{ ]`, 'm').test(text) ? Math.round(sumMetric(text, name, labels) / 1e6) : Number.NaN);
  return {
    rssMB: toMB(rssKiB),
    v8UsedMB: metric('perch_nodejs_heap_size_used_bytes'),
    v8TotalMB: metric('perch_nodejs_heap_size_total_bytes'),
    v8YoungMB: metric('perch_nodejs_heap_space_size_total_bytes', { space: 'new' }),
    externalMB: metric('perch_nodejs_external_memory_bytes'),
    mainHeapMB: toMB(split.heapKiB),
    anonMB: toMB(split.anonKiB),
    fileMB: toMB(split.fileKiB),
    clientMB: metric('perch_client_bytes'),
  };
}

/**
 * Where the memory is near the attack's peak: the split read every `everyMs` (a /metrics scrape
 * and an smaps read each, a few ms of Perch's main thread), the reading with the highest RSS
 * kept. The end of an attack is not its peak: the never-reading attack's external memory and
 * main heap at its end said little about what had set the peak seconds before.
 */
export function sampleAtPeak(pid: number, baseUrl: string, rssKiB: () => number, everyMs = 500): { stop(): Promise<MemoryBreakdown | null> } {
  let best: MemoryBreakdown | null = null;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const m = await memoryBreakdown(pid, baseUrl, rssKiB()).catch(() => null);
      if (m && (!best || m.rssMB > best.rssMB)) best = m;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return best;
    },
  };
}
