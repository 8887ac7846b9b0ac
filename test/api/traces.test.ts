// OpenTelemetry spans of inference requests, from a real `perch serve` to a real OTLP/HTTP
// receiver started here: the caller's traceparent is the parent of `perch.request`, which has
// `perch.receive`, `perch.queue`, `perch.compute` and `perch.answer` children; the batch the
// requests rode in is one `perch.batch` span linked to every request (and linked from each
// request's `perch.compute`), with `perch.stack`, `perch.session.run` and `perch.split` under it.
// The batch is made deterministic with a long maxQueueDelayMs: it goes when it is full.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { jsonTensor, waitFor, WsClient } from '../helpers/clients.js';
import { clsInput } from '../helpers/models.js';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { servePerch } from '../helpers/perch-process.js';
import { TempRepository } from '../helpers/repository.js';
import type { Child } from '../helpers/wire.js';

const children: Child[] = [];
after(async () => {
  for (const c of children) await c.kill();
});

function traceparent(): { header: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { header: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

function only(spans: ReceivedSpan[], what: string): ReceivedSpan {
  assert.equal(spans.length, 1, `one ${what}: ${JSON.stringify(spans.map((s) => s.name))}`);
  return spans[0] as ReceivedSpan;
}

test('an inference request is a trace: receive, queue, compute (linked to its shared batch), answer', async () => {
  const receiver = await OtlpReceiver.start();
  const repo = new TempRepository({
    cls: { versions: { 1: MODEL_FILES.ocrCls }, config: { maxBatchSize: 4, batching: { maxQueueDelayMs: 10_000 } } },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'perch-traces-'));
  const configFile = join(dataDir, 'perch.json');
  writeFileSync(configFile, JSON.stringify({
    device: { id: 'traced-1' }, dataDir, models: { repository: repo.dir }, server: { host: '127.0.0.1', port: 0 }, log: { level: 'info' },
    telemetry: { traces: { endpoint: receiver.url } },
  }));
  try {
    const { baseUrl } = await servePerch(configFile, children);
    const parents = [traceparent(), traceparent(), traceparent()];
    const body = (seed: number): string => JSON.stringify({ inputs: clsInput(seed).map(jsonTensor) });
    const ws = await WsClient.connect(`${baseUrl.replace('http', 'ws')}/v1/ws`);
    // Four requests, one full batch: three over HTTP (two with a traceparent), one over WebSocket.
    const answers = await Promise.all([
      fetch(`${baseUrl}/v2/models/cls/infer`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: parents[0]!.header }, body: body(1) }),
      fetch(`${baseUrl}/v2/models/cls/infer`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: parents[1]!.header }, body: body(2) }),
      fetch(`${baseUrl}/v2/models/cls/infer`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: 'not-a-traceparent' }, body: body(3) }),
      ws.request({ op: 'infer', model: 'cls', inputs: clsInput(4).map(jsonTensor), traceparent: parents[2]!.header }),
    ]);
    for (const a of answers.slice(0, 3)) assert.equal((a as Response).status, 200);
    assert.ok((answers[3] as { ok: boolean }).ok);
    ws.socket.close();
    // A failing request of a known model: its span ends with the error code.
    const failParent = traceparent();
    const bad = await fetch(`${baseUrl}/v2/models/cls/infer`, { method: 'POST', headers: { 'content-type': 'application/json', traceparent: failParent.header }, body: '{"inputs": []}' });
    assert.equal(bad.status, 400);

    await waitFor(() => receiver.named('perch.batch').length === 1 && receiver.named('perch.answer').length === 4 && receiver.named('perch.request').length === 5, 30_000,
      () => `spans: ${JSON.stringify(receiver.spans.map((s) => s.name))}`);
    const batch = only(receiver.named('perch.batch'), 'batch');
    assert.equal(batch.service, 'traced-1', 'service.name is the device id');
    assert.equal(batch.attributes['perch.batch.size'], 4);
    assert.equal(batch.attributes['perch.batch.requests'], 4);
    assert.equal(batch.attributes['perch.batch.ahead'], false, 'handed to an idle session, not ahead of another batch');
    assert.equal(batch.attributes['perch.model'], 'cls');
    assert.deepEqual(receiver.childrenOf(batch).map((s) => s.name).sort(), ['perch.session.run', 'perch.split', 'perch.stack']);

    const requests = receiver.named('perch.request').filter((r) => r.status.code !== 2);
    assert.equal(requests.length, 4);
    assert.deepEqual(batch.links.map((l) => l.spanId).sort(), requests.map((r) => r.spanId).sort(), 'the batch links every request it carried');
    for (const [i, p] of parents.entries()) {
      const r = only(requests.filter((s) => s.traceId === p.traceId), `request ${i}`);
      assert.equal(r.parentSpanId, p.spanId, 'the caller\'s traceparent is the parent');
      assert.equal(r.kind, 2, 'SERVER');
      assert.equal(r.attributes['perch.transport'], i === 2 ? 'ws' : 'http');
      assert.equal(r.attributes['perch.model'], 'cls');
      assert.equal(r.attributes['perch.version'], '1');
      const kids = receiver.childrenOf(r);
      assert.deepEqual(kids.map((s) => s.name).sort(), ['perch.answer', 'perch.compute', 'perch.queue', 'perch.receive']);
      const compute = kids.find((s) => s.name === 'perch.compute')!;
      assert.deepEqual(compute.links, [{ traceId: batch.traceId, spanId: batch.spanId }]);
      assert.equal(compute.attributes['perch.batch.size'], 4);
      // Children sit inside their request, in order.
      const at = (n: string): ReceivedSpan => kids.find((s) => s.name === n)!;
      assert.ok(r.startNs <= at('perch.receive').startNs && at('perch.answer').endNs <= r.endNs);
      assert.ok(at('perch.queue').endNs <= at('perch.compute').startNs + 1_000_000n);
      assert.ok(at('perch.compute').endNs <= at('perch.answer').startNs + 1_000_000n);
    }
    const unparented = only(requests.filter((s) => !parents.some((p) => p.traceId === s.traceId)), 'request with a bad traceparent');
    assert.equal(unparented.parentSpanId, '', 'a bad traceparent is ignored: a new trace');
    const failed = only(receiver.named('perch.request').filter((s) => s.traceId === failParent.traceId), 'failed request');
    assert.equal(failed.status.code, 2, 'ERROR');
    assert.equal(failed.attributes['perch.error.code'], 'PERCH_ERR_INVALID_MESSAGE');
  } finally {
    repo.remove();
    rmSync(dataDir, { recursive: true, force: true });
    await receiver.close();
  }
});
