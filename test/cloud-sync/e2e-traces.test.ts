// OpenTelemetry across processes, end to end with real processes and a real OTLP/HTTP receiver
// started here (docs/observability.md):
// - an event emitted over WebSocket with a traceparent is one trace: `perch.event.emit` (with
//   `perch.outbox.append`) in the device, `perch.event.upload` after the device was SIGKILLed and
//   started again (the outbox row kept the traceparent), and `perch.fleet.ingest` in
//   `perch fleet serve`, parented through the MQTT v5 user property `traceparent`;
// - a model update is a `perch.model.update` span with one child per step, in order.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fleet, spawnFleet } from '../fleet/harness.js';
import { WsClient } from '../helpers/clients.js';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { e2eSetup } from './helpers/e2e.js';
import { readReported, waitFor } from './helpers/mqtt-client.js';

const e2e = e2eSetup({ 'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') } });
let receiver: OtlpReceiver;
before(async () => {
  receiver = await OtlpReceiver.start();
});
after(() => receiver.close());

/** Turns traces on in a device's perch.json. */
function withTraces(configFile: string): void {
  const c = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(configFile, JSON.stringify({ ...c, telemetry: { traces: { endpoint: receiver.url } } }));
}

function one(spans: ReceivedSpan[], what: string): ReceivedSpan {
  assert.equal(spans.length, 1, `one ${what}, got ${spans.length}`);
  return spans[0] as ReceivedSpan;
}

test('an event: emit, upload after a device restart, fleet ingest: one trace through MQTT v5', async () => {
  const { broker } = e2e;
  const store = e2e.tempDir('perch-e2e-fleet-');
  // MQTT v5 (the user property needs it); the fleet acks (the default), so the event stays stored
  // until fleet serve has it.
  // One event per message: each upload span is then the child of its own event's emit span.
  const { deviceId, configFile } = e2e.device('traced', { cloud: { protocolVersion: 5, upload: { batchSize: 1 }, delivery: { ackTimeoutMs: 500, maxResendMs: 1000 } } });
  withTraces(configFile);
  const first = await e2e.serve(configFile);
  const ws = await WsClient.connect(`ws://127.0.0.1:${first.port}/v1/ws`);
  const traceId = randomBytes(16).toString('hex');
  const callerSpan = randomBytes(8).toString('hex');
  const emitted = await ws.request({ op: 'emit', type: 'door.opened', payload: { door: 3 }, traceparent: `00-${traceId}-${callerSpan}-01` });
  assert.ok(emitted.ok, JSON.stringify(emitted.body));
  const seq = emitted.body.seq as number;
  ws.socket.close();
  const emit = await waitFor(() => receiver.named('perch.event.emit').find((s) => s.traceId === traceId), 30_000, 'the emit span');
  // No fleet serve yet: the event is not acked, so it is still stored when the device dies.
  await first.child.kill();

  const serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0', '--traces-endpoint', receiver.url]);
  e2e.children.push(serve);
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'subscribed'), 20_000, 'fleet serve subscribed');
  assert.ok(serve.running, serve.stderr);
  const second = await e2e.serve(configFile);

  const ingest = await waitFor(() => receiver.named('perch.fleet.ingest').find((s) => s.traceId === traceId), 30_000,
    () => `the ingest span; spans: ${JSON.stringify(receiver.spans.map((s) => [s.name, s.traceId === traceId]))}`);
  assert.equal(emit.parentSpanId, callerSpan, 'the emitter\'s traceparent is the parent');
  assert.equal(emit.kind, 4, 'PRODUCER');
  assert.equal(emit.service, deviceId);
  assert.equal(emit.attributes['perch.event.type'], 'door.opened');
  assert.equal(emit.attributes['perch.event.seq'], seq);
  // Under the emit span: the append, and every upload of the event (the first device sent it too).
  const underEmit = receiver.childrenOf(emit).map((s) => s.name);
  assert.deepEqual(underEmit.filter((n) => n !== 'perch.event.upload'), ['perch.outbox.append']);
  // The upload that reached the fleet: a child of the emit span, made by the restarted device.
  const upload = one(receiver.spans.filter((s) => s.name === 'perch.event.upload' && s.spanId === ingest.parentSpanId), 'upload parent of the ingest');
  assert.equal(upload.traceId, traceId);
  assert.equal(upload.parentSpanId, emit.spanId, 'the stored traceparent survived the SIGKILL');
  assert.ok(upload.links.some((l) => l.spanId === emit.spanId));
  assert.equal(upload.attributes['perch.event.first_seq'], seq);
  assert.ok(upload.startNs > emit.endNs);
  assert.equal(ingest.service, 'perch-fleet');
  assert.equal(ingest.kind, 5, 'CONSUMER');
  assert.equal(ingest.attributes['perch.device.id'], deviceId);
  assert.ok(Number(ingest.attributes['perch.events']) >= 1);
  // Both share the broker's default prefix with the next test: its fleet serve must be alone in
  // the shared subscription group that answers chunk requests.
  await serve.kill();
  await second.child.kill();
});

test('a model update: one span, a child per step in order', async () => {
  const { broker } = e2e;
  const store = e2e.tempDir('perch-e2e-fleet-');
  const keys = join(e2e.tempDir('perch-e2e-keys-'), 'keys');
  assert.equal((await fleet(['keygen', '--out', keys])).code, 0);
  const { deviceId, configFile } = e2e.device('upd', { cloud: { trustedKeysFile: join(keys, 'signing-key.pub.pem') } });
  withTraces(configFile);
  const serve = spawnFleet(['serve', '--url', broker.url, '--store', store, '--progress-ms', '0']);
  e2e.children.push(serve);
  await waitFor(() => !serve.running || serve.logLines().some((l) => l.msg === 'fleet serve ready'), 20_000, 'fleet serve ready');
  const device = await e2e.serve(configFile);
  await waitFor(async () => (await readReported(broker.url, deviceId))?.desiredVersion === 0, 20_000, 'device reported');
  const push = spawnFleet(['push', '--url', broker.url, '--store', store, '--model', 'silero-vad', '--file', MODEL_FILES.sileroVad,
    '--device', deviceId, '--version', '2', '--sign-key', join(keys, 'signing-key.pem'), '--wait', '--wait-timeout', '60']);
  e2e.children.push(push);
  assert.equal((await push.exited).code, 0, `${push.stderr}\ndevice:\n${device.child.stdout.slice(-3000)}\nfleet:\n${serve.stdout.slice(-2000)}`);

  const update = await waitFor(() => receiver.named('perch.model.update').find((s) => s.service === deviceId), 30_000, 'the update span');
  assert.equal(update.attributes['perch.model'], 'silero-vad');
  assert.equal(update.attributes['perch.model.version'], 2);
  assert.equal(update.attributes['perch.model.previous_version'], 1);
  assert.notEqual(update.status.code, 2);
  const steps = receiver.childrenOf(update).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
  const names = steps.map((s) => s.name.replace('perch.model.update.', ''));
  assert.deepEqual(names.slice(0, 5), ['check-name', 'check-version', 'check-signature', 'check-space', 'fetch-chunks']);
  assert.deepEqual(names, ['check-name', 'check-version', 'check-signature', 'check-space', 'fetch-chunks', 'verify-size', 'verify-digest', 'stage', 'load-warmup-swap']);
  for (const s of steps) assert.ok(update.startNs <= s.startNs && s.endNs <= update.endNs, `${s.name} inside the update`);
});
