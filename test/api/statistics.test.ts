// Triton's statistics extension against a real `perch serve`: the counts agree exactly with the
// requests made (successes, failures, cache hits and misses, items, session runs), the times are
// positive, and batch_stats name the batch sizes the metrics say ran. The batches are made
// deterministic with a long maxQueueDelayMs: a batch goes when it is full, not when a timer fires.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { httpInfer } from '../helpers/clients.js';
import { clsInput, randomFp32 } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { servePerch } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';

interface Stat { count: number; ns: number }
interface ModelStat {
  name: string; version: string; last_inference: number; inference_count: number; execution_count: number;
  inference_stats: Record<string, Stat>;
  batch_stats: Array<{ batch_size: number; compute_input: Stat; compute_infer: Stat; compute_output: Stat }>;
}

const children: Child[] = [];
after(async () => {
  for (const c of children) await c.kill();
});

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function metric(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('model="cls"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('GET /v2/models/stats agrees with the requests made', async () => {
  const repo = new TempRepository({
    cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 8, batching: { maxQueueDelayMs: 10_000 } } },
    other: { versions: { 1: MODEL_FILES.ocrCls } },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-stats-'));
  const configFile = join(dataDir, 'perch.json');
  writeFileSync(configFile, JSON.stringify({
    device: { id: 'stats-1' }, dataDir, models: { repository: repo.dir }, server: { host: '127.0.0.1', port: 0 }, log: { level: 'info' },
  }));
  try {
    const { baseUrl } = await servePerch(configFile, children);
    const before = (await getJson(`${baseUrl}/v2/models/cls/stats`)).body.model_stats as ModelStat[];
    assert.equal(before.length, 1);
    assert.equal(before[0]!.execution_count, 0);
    assert.equal(before[0]!.last_inference, 0);
    const t0 = Date.now();

    // 16 one-item requests at once: two full batches of 8 (the queue delay never runs out).
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => httpInfer(baseUrl, 'cls', clsInput(100 + i))));
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    // One request of 8 items through the cache: a miss that fills a batch alone, then a hit.
    const miss = await httpInfer(baseUrl, 'cls', clsInput(7, 8), { parameters: { cache: true } });
    assert.equal((miss.body.parameters as { cached: boolean }).cached, false);
    const hit = await httpInfer(baseUrl, 'cls', clsInput(7, 8), { parameters: { cache: true } });
    assert.equal((hit.body.parameters as { cached: boolean }).cached, true);
    // Three failures of a known version (an input the model does not have).
    for (let i = 0; i < 3; i++) {
      const bad = await httpInfer(baseUrl, 'cls', [randomFp32('nope', [1, 3, 48, 192], i)]);
      assert.equal(bad.status, 400);
    }

    const all = (await getJson(`${baseUrl}/v2/models/stats`)).body.model_stats as ModelStat[];
    assert.deepEqual(all.map((s) => [s.name, s.version]), [['cls', '1'], ['other', '1']]);
    const byModel = (await getJson(`${baseUrl}/v2/models/cls/stats`)).body.model_stats as ModelStat[];
    const byVersion = (await getJson(`${baseUrl}/v2/models/cls/versions/1/stats`)).body.model_stats as ModelStat[];
    const s = byVersion[0]!;
    assert.deepEqual(byModel, byVersion);
    assert.deepEqual(all[0], s);
    assert.equal(s.name, 'cls');
    assert.equal(s.version, '1');
    const st = s.inference_stats;
    assert.equal(st.success!.count, 18);
    assert.equal(st.fail!.count, 3);
    assert.equal(st.cache_hit!.count, 1);
    assert.equal(st.cache_miss!.count, 1);
    assert.equal(st.queue!.count, 17, 'every request that ran waited in the queue; a hit never queues');
    for (const k of ['compute_input', 'compute_infer', 'compute_output']) assert.equal(st[k]!.count, 17, k);
    assert.equal(s.inference_count, 16 + 8);
    assert.equal(s.execution_count, 3);
    // What the Prometheus metrics say ran, the same.
    assert.equal(await metric(baseUrl, 'perch_inference_exec_count_total'), s.execution_count);
    assert.equal(await metric(baseUrl, 'perch_inference_count_total'), s.inference_count);
    assert.equal(s.batch_stats.length, 1);
    const b = s.batch_stats[0]!;
    assert.equal(b.batch_size, 8);
    for (const k of ['compute_input', 'compute_infer', 'compute_output'] as const) assert.equal(b[k].count, 3, k);
    // Times: positive, and parts never exceed the whole they belong to.
    for (const k of Object.keys(st)) assert.ok(st[k]!.ns > 0, `${k}.ns > 0`);
    assert.ok(st.compute_infer!.ns > b.compute_infer.ns, 'per request (17) vs per batch (3)');
    assert.ok(st.compute_infer!.ns + st.queue!.ns < st.success!.ns, 'queue + session run are inside the requests\' time');
    assert.ok(st.cache_hit!.ns < st.success!.ns);
    assert.ok(s.last_inference >= t0 - 1000 && s.last_inference <= Date.now() + 1000, `last_inference ${s.last_inference} is now`);
    const other = all[1]!;
    assert.equal(other.execution_count, 0);
    assert.equal(other.inference_stats.success!.count, 0);
    assert.deepEqual(other.batch_stats, []);

    // Unknown model or version: the usual 404s.
    const unknown = await getJson(`${baseUrl}/v2/models/nope/stats`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'PERCH_ERR_MODEL_NOT_FOUND');
    const noVersion = await getJson(`${baseUrl}/v2/models/cls/versions/9/stats`);
    assert.equal(noVersion.status, 404);
    assert.equal(noVersion.body.code, 'PERCH_ERR_VERSION_NOT_FOUND');
    const meta = await getJson(`${baseUrl}/v2`);
    assert.ok((meta.body.extensions as string[]).includes('statistics'));
  } finally {
    repo.remove();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
