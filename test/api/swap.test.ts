// Twenty version swaps under continuous load: zero failed requests. Requests in flight finish
// on the old session, new ones go to the new one, and the old one is released after draining.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpInfer, waitFor, WsClient } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime } from '../helpers/runtime.js';

test('twenty version swaps under continuous load: zero failed requests', async () => {
  const repo = new TempRepository({ cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 8 } } });
  const rt = await startRuntime(repo.dir);
  const clients = await Promise.all(Array.from({ length: 4 }, () => WsClient.connect(rt.wsUrl)));
  let stop = false;
  const failures: string[] = [];
  const versionsSeen = new Set<string>();
  let answered = 0;
  const input = clsInput(7);
  const load = async (i: number): Promise<void> => {
    while (!stop) {
      const a = i === 0 ? await httpInfer(rt.baseUrl, 'cls', input) : await clients[i - 1]!.infer('cls', input, { binary: true });
      const body = 'result' in a.body ? (a.body.result as Record<string, unknown>) : a.body;
      if (a.outputs.length !== 1) failures.push(JSON.stringify(a.body));
      else versionsSeen.add(String(body.model_version));
      answered++;
    }
  };
  const loops = [0, 1, 2, 3, 4].map(load);
  try {
    for (let v = 2; v <= 21; v++) {
      const before = answered;
      repo.addVersion('cls', v, MODEL_FILES.ocrCls);
      const res = await fetch(`${rt.baseUrl}/v2/repository/models/cls/load`, { method: 'POST' });
      assert.equal(res.status, 200, await res.text());
      // Wait until requests have been answered by the new version before the next swap.
      await waitFor(() => versionsSeen.has(String(v)) && answered > before + 5, 20_000, `traffic on version ${v}`);
    }
  } finally {
    stop = true;
    await Promise.all(loops);
  }
  assert.deepEqual(failures, []);
  assert.equal(versionsSeen.size, 21, `answers came from versions ${[...versionsSeen].join(',')}`);
  assert.deepEqual(rt.runtime.registry.statusOf('cls').served, [21]);
  // Every old session drained and released: only the live one is left.
  await waitFor(() => rt.runtime.registry.drainingCount === 0, 20_000, 'old versions released');
  await Promise.all(clients.map((c) => c.close()));
  await rt.stop();
  repo.remove();
});
