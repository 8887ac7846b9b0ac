// A flood of valid commands (docs/protocol.md section 5): a peer with publish rights sending
// reportState and flushCache by the hundred wrote a 'command received' line each (the log and
// the disk filled), and every reportState built and published the whole state/reported
// document. Now a line per command kind every LOG_LIMIT_INTERVAL_MS (the count with the next),
// and the reportStates of one REPORT_STATE_INTERVAL_MS share one publish; every command is
// still answered by id (command.succeeded, `coalesced: true` for those that joined a publish).
// Real Mosquitto, the whole agent on a fake clock (the intervals move when the test says).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { REPORT_STATE_INTERVAL_MS } from '../../cloud-sync/agent/report-requests.js';
import { topics } from '../../cloud-sync/protocol/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogger } from '../helpers/log-capture.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { connectClient, PREFIX, readReported, waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

const N = 200;
let broker: Mosquitto;
before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker?.close();
});

test(`${N} reportState and ${N} flushCache commands: a log line per kind, two publishes, every id answered`, async () => {
  const clock = new FakeClock();
  const { logger, lines } = captureLogger('info');
  const t = makePort({ mqttUrl: broker.url, clock, log: logger });
  const agent = createCloudAgent(t.port);
  const cloud = await connectClient(broker.url);
  const tp = topics(PREFIX, t.port.device.id);
  try {
    await agent.start(new AbortController().signal);
    await waitFor(() => agent.online, 5000, 'online');
    await waitFor(() => readReported(broker.url, t.port.device.id), 5000, 'the publish on connect');
    // Publishes from now on (the retained copy a subscription gets first is not one).
    const published: number[] = [];
    cloud.on('message', (topic, payload, packet) => {
      if (topic === tp.reported && !packet.retain) published.push((JSON.parse(payload.toString()) as { ts: number }).ts);
    });
    await cloud.subscribeAsync(tp.reported, { qos: 1 });

    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      sends.push(cloud.publishAsync(tp.commands, JSON.stringify({ id: `r${i}`, command: 'reportState' }), { qos: 1 }));
      sends.push(cloud.publishAsync(tp.commands, JSON.stringify({ id: `f${i}`, command: 'flushCache' }), { qos: 1 }));
    }
    await Promise.all(sends);
    const answered = (command: string): Array<{ id: string; result: { coalesced?: boolean } }> =>
      t.events.filter((e) => e.type === 'command.succeeded' && (e.payload as { command: string }).command === command).map((e) => e.payload as never);
    await waitFor(() => agent.stats().commands === 2 * N && answered('flushCache').length === N && answered('reportState').length >= 1, 30_000, 'every command received')
      .catch((err: Error) => {
        throw new Error(`${err.message}: ${agent.stats().commands} received, ${answered('flushCache').length} flushCache and ${answered('reportState').length} reportState answered`);
      });

    const received = lines.filter((l) => l.msg === 'command received');
    assert.deepEqual(received.map((l) => l.command).sort(), ['flushCache', 'reportState'], `a line per kind within the interval, not ${received.length}`);

    // The interval after the first publish ends: one more publish answers all the others.
    clock.advance(REPORT_STATE_INTERVAL_MS);
    await waitFor(() => answered('reportState').length === N, 10_000, 'every reportState answered');
    const ids = new Set(answered('reportState').map((a) => a.id));
    assert.equal(ids.size, N);
    assert.equal(answered('reportState').filter((a) => a.result.coalesced === true).length, N - 2, 'all but the two that started a publish');

    // A barrier: one more, an interval later, published at once; MQTT keeps one topic's order,
    // so when it arrives every publish before it has.
    clock.advance(REPORT_STATE_INTERVAL_MS);
    const barrierTs = clock.wallNow();
    await cloud.publishAsync(tp.commands, JSON.stringify({ id: 'last', command: 'reportState' }), { qos: 1 });
    await waitFor(() => published.includes(barrierTs), 10_000, 'the barrier publish');
    assert.equal(published.length, 3, `the first, the shared one, the barrier (was one per command): ${published.length}`);
    const last = await waitFor(() => answered('reportState').find((a) => a.id === 'last'), 10_000, 'the barrier answered');
    assert.deepEqual(last.result, {});

    // One still waiting for its turn when the agent stops is answered, failed, and leaves no timer.
    await cloud.publishAsync(tp.commands, JSON.stringify({ id: 'at-stop', command: 'reportState' }), { qos: 1 });
    await waitFor(() => agent.stats().commands === 2 * N + 2, 10_000, 'the last command received');
    await agent.stop();
    const failed = await waitFor(() => t.events.find((e) => e.type === 'command.failed' && (e.payload as { id: string }).id === 'at-stop'), 10_000, 'answered at stop');
    assert.equal((failed.payload as { error: { code: string } }).error.code, 'PERCH_ERR_SHUTTING_DOWN');
    assert.equal(clock.pending, 0, 'no timer left');
  } finally {
    await cloud.endAsync(true);
    await agent.stop();
    await t.close(true);
  }
});
