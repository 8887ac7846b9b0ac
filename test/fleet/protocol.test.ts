// The shared protocol module: topics, payload parsing (not JSON, against the schema, oversized).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePayload } from '../../cloud-sync/protocol/parse.js';
import { desiredSchema, eventsSchema, modelsRequestSchema } from '../../cloud-sync/protocol/schemas.js';
import { fleetTopics, parseTopic, topics } from '../../cloud-sync/protocol/topics.js';
import { applySet } from '../../cloud-sync/fleet/cli/config-set.js';

describe('protocol module', () => {
  test('topics and their parse agree', () => {
    const t = topics('perch/v1', 'pi-1');
    assert.equal(t.desired, 'perch/v1/devices/pi-1/state/desired');
    assert.equal(t.chunk('vad', 3, 12), 'perch/v1/devices/pi-1/models/vad/3/chunks/12');
    assert.equal(fleetTopics('perch/v1').sharedEvents, '$share/perch-fleet/perch/v1/devices/+/events');
    assert.deepEqual(parseTopic('perch/v1', t.chunk('vad', 3, 12)), { deviceId: 'pi-1', kind: 'chunk', name: 'vad', version: 3, index: 12 });
    for (const [k, topic] of [['status', t.status], ['events', t.events], ['reported', t.reported], ['modelsRequest', t.modelsRequest], ['desired', t.desired], ['commands', t.commands]] as const) {
      assert.deepEqual(parseTopic('perch/v1', topic), { deviceId: 'pi-1', kind: k });
    }
    assert.equal(parseTopic('perch/v1', 'other/devices/pi-1/status'), undefined);
  });

  test('bad payloads come back as PERCH_ERR_MQTT_PAYLOAD_INVALID with a reason, never thrown', () => {
    const cases: Array<[unknown, string | Buffer, string]> = [
      [eventsSchema, 'not json', 'json'],
      [eventsSchema, '{"deviceId":"a","events":[{"seq":"x"}]}', 'schema'],
      [modelsRequestSchema, '{"name":"../etc","version":1,"from":0,"count":1}', 'schema'],
      [modelsRequestSchema, Buffer.alloc(2000, 32), 'oversized'],
      // Past MAX_JSON_DEPTH (128): refused before anything recursive reads it (runtime/base/json-depth.ts).
      [desiredSchema, `{"version":2,"config":{"a":${'['.repeat(127)}${']'.repeat(127)}}}`, 'depth'],
      [eventsSchema, `{"deviceId":"a","events":[{"id":"e","seq":1,"ts":1,"type":"t","payload":${'['.repeat(400)}${']'.repeat(400)}}]}`, 'depth'],
    ];
    for (const [schema, payload, reason] of cases) {
      const r = parsePayload(schema as typeof eventsSchema, payload, 1000);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.reason, reason);
        assert.equal(r.error.code, 'PERCH_ERR_MQTT_PAYLOAD_INVALID');
      }
    }
    const atBound = parsePayload(desiredSchema, `{"version":2,"config":{"a":${'['.repeat(126)}${']'.repeat(126)}}}`, 1000);
    assert.equal(atBound.ok, true, '128 levels: taken');
    const ok = parsePayload(desiredSchema, '{"version":2,"models":{"vad":null}}');
    assert.deepEqual(ok, { ok: true, value: { version: 2, models: { vad: null }, config: {} } });
  });

  test('--set builds nested config, JSON values parsed, strings otherwise', () => {
    const doc = {};
    for (const s of ['log.level=debug', 'cloud.upload.batchSize=50', 'models.overrides.silero-vad.batching.maxQueueDelayMs=2', 'cache.enabled=false', 'x={"a":[1]}']) applySet(doc, s);
    assert.deepEqual(doc, {
      log: { level: 'debug' },
      cloud: { upload: { batchSize: 50 } },
      models: { overrides: { 'silero-vad': { batching: { maxQueueDelayMs: 2 } } } },
      cache: { enabled: false },
      x: { a: [1] },
    });
    assert.throws(() => applySet({}, '__proto__.x=1'));
  });
});
