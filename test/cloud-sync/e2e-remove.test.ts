// End to end with real processes: `perch fleet remove` publishes a desired document naming a
// model as null (docs/protocol.md section 5: null removes it); a real `perch serve` with cloud sync on
// stops serving that model, deletes it from its repository, reports it gone in state/reported
// and records a model.removed event, while the model not named keeps serving.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { topics } from '../../cloud-sync/protocol/index.js';
import { fleet } from '../fleet/harness.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { shippedModelConfig } from '../helpers/repository.js';
import { e2eSetup } from './helpers/e2e.js';
import { eventsConsumer, readReported, readRetained, waitFor } from './helpers/mqtt-client.js';

const e2e = e2eSetup({
  'silero-vad': { versions: { 1: MODEL_FILES.sileroVad16k }, config: shippedModelConfig('silero-vad') },
  'pp-ocr-cls': { versions: { 1: MODEL_FILES.ocrCls }, config: shippedModelConfig('pp-ocr-cls') },
});

type ReportedModels = Record<string, { version: number; status: string }>;

test('fleet remove: the device unloads the model, deletes it, reports it gone; the other model keeps serving', async () => {
  const { broker, repo } = e2e;
  const { deviceId, configFile } = e2e.device('rm');
  const fleetStore = e2e.tempDir('perch-e2e-fleet-');
  // Subscribed before the device runs: its events (model.removed among them) wait in this session.
  const consumer = await eventsConsumer(broker.url, deviceId);
  const { child, port } = await e2e.serve(configFile);
  try {
    const ready = async (model: string) => (await fetch(`http://127.0.0.1:${port}/v2/models/${model}/ready`)).status;
    await waitFor(async () => (await ready('silero-vad')) === 200 && (await ready('pp-ocr-cls')) === 200, 30_000, 'both models ready');
    // The fleet knows the device from its reported state, which lists both models.
    await waitFor(async () => {
      const models = (await readReported(broker.url, deviceId))?.models as ReportedModels | undefined;
      return models?.['silero-vad']?.status === 'active' && models['pp-ocr-cls']?.status === 'active';
    }, 10_000, 'reported: both active');

    const r = await fleet(['remove', '--url', broker.url, '--store', fleetStore, '--device', deviceId, '--model', 'silero-vad']);
    assert.equal(r.code, 0, r.stderr);
    const published = JSON.parse(r.stdout) as { version: number; models: Record<string, unknown> };
    assert.deepEqual(published.models, { 'silero-vad': null });

    // Unloaded: the runtime no longer knows the model; the other one still serves.
    await waitFor(async () => (await ready('silero-vad')) === 404, 10_000, 'silero-vad gone');
    assert.equal(await ready('pp-ocr-cls'), 200);

    // Reported (once the removal finished): the desired version applied, the model no longer
    // listed, the other still active.
    const rep = await waitFor(async () => {
      const doc = await readReported(broker.url, deviceId);
      const models = doc?.models as ReportedModels | undefined;
      return doc?.desiredVersion === published.version && models && !('silero-vad' in models) ? doc : null;
    }, 10_000, 'reported without silero-vad');
    assert.equal((rep.models as ReportedModels)['pp-ocr-cls']?.status, 'active');
    // The event is recorded after the files are gone: then a restart cannot bring the model back.
    const removed = await waitFor(() => consumer.unique().find((e) => e.type === 'model.removed'), 10_000, 'model.removed event');
    assert.deepEqual(removed.payload, { model: 'silero-vad', version: 1 });
    assert.equal(existsSync(join(repo.dir, 'silero-vad')), false, 'deleted from the repository');
    assert.equal(existsSync(join(repo.dir, 'pp-ocr-cls', '1', 'model.onnx')), true);


    // The device is still online and the desired document stays retained with the null.
    assert.equal((await readRetained(broker.url, topics('perch/v1', deviceId).status))?.online, true);
  } finally {
    child.proc.kill('SIGTERM');
    await child.exited;
    await consumer.close();
  }
});
