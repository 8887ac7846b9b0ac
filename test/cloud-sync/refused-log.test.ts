// A flood of refused MQTT messages (docs/cloud-sync.md "Bad payloads"): a broker, or a peer with
// publish rights, sending thousands a second wrote one warning line per message, filling the log
// and the disk. Now each kind of refusal writes its first line at once, then at most one line per
// LOG_LIMIT_INTERVAL_MS, the latest with the count of those not logged; every message is still
// counted in agent.stats() and every failed command is still an event.
// Real Mosquitto, the whole agent on a fake clock (the interval moves when the test says).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { topics } from '../../cloud-sync/protocol/index.js';
import { LOG_LIMIT_INTERVAL_MS } from '../../runtime/base/log-limit.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogger, WARN, type LogLine } from '../helpers/log-capture.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { connectClient, PREFIX, waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

const N = 200;
let broker: Mosquitto;
before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker?.close();
});

test(`${N} refused messages of each kind: one line each at once, then one with the count per interval; all counted`, async () => {
  const clock = new FakeClock();
  const { logger, lines } = captureLogger('info');
  const t = makePort({ mqttUrl: broker.url, clock, log: logger });
  const agent = createCloudAgent(t.port);
  const cloud = await connectClient(broker.url);
  const tp = topics(PREFIX, t.port.device.id);
  try {
    await agent.start(new AbortController().signal);
    await waitFor(() => agent.online, 5000, 'online');
    const flood = async (): Promise<void> => {
      for (let i = 0; i < N; i++) {
        await Promise.all([
          cloud.publishAsync(tp.commands, 'not json {', { qos: 1 }),
          cloud.publishAsync(tp.commands, JSON.stringify({ id: `x${i}`, command: 'selfDestruct' }), { qos: 1 }),
          cloud.publishAsync(tp.desired, `{"version": ${i + 1}, not json`, { qos: 1 }),
          cloud.publishAsync(tp.chunk('m', 1, i), Buffer.from([1, 2, 3]), { qos: 1 }),
          // Read and run, and failed: no args.model.
          cloud.publishAsync(tp.commands, JSON.stringify({ id: `r${i}`, command: 'rollback' }), { qos: 1 }),
        ]);
      }
    };
    await flood();
    const failedCommands = (): number => t.events.filter((e) => e.type === 'command.failed').length;
    await waitFor(() => {
      const s = agent.stats().ignored;
      return s.json === 2 * N && s.schema === N && s.unknownChunk === N && failedCommands() === N;
    }, 30_000, 'every message counted').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(agent.stats().ignored)}, ${failedCommands()} failed commands`);
    });

    const kinds = (): Map<string, LogLine[]> => {
      const by = new Map<string, LogLine[]>();
      for (const l of lines) {
        if (l.level < WARN) continue;
        const key = `${l.msg} ${String(l.reason ?? l.command ?? '')}`;
        by.set(key, [...(by.get(key) ?? []), l]);
      }
      return by;
    };
    const expected = [
      'MQTT message ignored json', // commands, not JSON
      'MQTT message ignored schema', // commands, unknown command
      'desired state refused json',
      'MQTT message ignored unknownChunk',
      'command failed rollback',
    ];
    let by = kinds();
    assert.deepEqual([...by.keys()].sort(), [...expected].sort(), JSON.stringify([...by.keys()]));
    for (const k of expected) {
      assert.equal(by.get(k)!.length, 1, `${k}: the first line only, within the interval`);
      assert.equal(by.get(k)![0]!.notLoggedSinceLastLine, undefined, k);
    }

    // The interval ends: the latest of each kind, with how many were not logged.
    clock.advance(LOG_LIMIT_INTERVAL_MS);
    by = kinds();
    for (const k of expected) {
      const l = by.get(k)!;
      assert.equal(l.length, 2, k);
      assert.equal(l[1]!.notLoggedSinceLastLine, N - 1, k);
    }
    assert.equal(by.get('command failed rollback')![1]!.id, `r${N - 1}`, 'the latest one');
    assert.equal(by.get('desired state refused json')![1]!.version, N, 'the latest one');

    // A quiet interval: no line, and the next refusal is written at once, without a count.
    clock.advance(LOG_LIMIT_INTERVAL_MS);
    assert.equal(kinds().get('MQTT message ignored json')!.length, 2);
    await cloud.publishAsync(tp.commands, 'not json {', { qos: 1 });
    await waitFor(() => (kinds().get('MQTT message ignored json')?.length ?? 0) === 3, 5000, 'a line after a quiet interval');
    assert.equal(kinds().get('MQTT message ignored json')![2]!.notLoggedSinceLastLine, undefined);

    // Held back when the agent stops: written then, with the count.
    await cloud.publishAsync(tp.commands, 'not json {', { qos: 1 });
    await cloud.publishAsync(tp.commands, 'not json {', { qos: 1 });
    await waitFor(() => agent.stats().ignored.json === 2 * N + 3, 5000, 'two more counted');
    await agent.stop();
    const json = kinds().get('MQTT message ignored json')!;
    assert.equal(json.length, 4);
    assert.equal(json[3]!.notLoggedSinceLastLine, 2);
    assert.equal(clock.pending, 0, 'no timer of the limiter left');
  } finally {
    await cloud.endAsync(true);
    await agent.stop();
    await t.close(true);
  }
});
