// Two clients with one client id (issue: a second client using a device's id kicked the real
// device off the broker 15 times in 15 s): the agent, displaced, backs off on its own injected
// clock with growing delays and says so in its log, instead of taking the id back at once.
// Real Mosquitto; the impostor is a raw mqtt.js client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { Connection } from '../../cloud-sync/agent/connection.js';
import { emptyStats } from '../../cloud-sync/agent/stats.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { captureLogger } from '../helpers/log-capture.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

let broker: Mosquitto;
before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker.close();
});

for (const protocolVersion of [5, 4] as const) {
  test(`MQTT ${protocolVersion}: displaced by a client with the same id, the agent backs off with growing delays and logs it`, async () => {
    const clock = new FakeClock();
    const logs = captureLogger();
    const t = makePort({
      mqttUrl: broker.url,
      clock,
      log: logs.logger,
      cloud: { protocolVersion, reconnect: { minMs: 1000, maxMs: 60_000 } },
    });
    const stats = emptyStats();
    // The top of each jitter range: the delays show the ceiling the backoff reached.
    const conn = new Connection(t.port, stats, { random: () => 0.999999 });
    const impostors: mqtt.MqttClient[] = [];
    const impostor = async (): Promise<void> => {
      const c = mqtt.connect(broker.url, { clientId: t.port.device.id, protocolVersion: 5, reconnectPeriod: 0, clean: true });
      c.on('error', () => undefined);
      impostors.push(c);
      await new Promise<void>((resolve) => c.once('connect', () => resolve()));
    };
    conn.start();
    try {
      await waitFor(() => conn.online, 5000, 'agent online');
      for (let round = 0; round < 4; round++) {
        await impostor(); // takes the id: the broker closes the agent's connection
        await waitFor(() => conn.delays.length === round + 1, 5000, `reconnect ${round + 1} scheduled`);
        clock.advance(conn.delays[round] ?? 0); // the agent comes back and takes the id again
        await waitFor(() => conn.online, 5000, `agent online again (${round + 1})`);
      }
      // 1 s, 2 s, 4 s, 8 s: the fight slows down instead of going on at the minimum delay.
      assert.deepEqual(conn.delays, [1000, 2000, 4000, 8000]);
      const warned = logs.lines.filter((l) => l.code === 'PERCH_ERR_CLIENT_ID_TAKEN');
      assert.equal(warned.length, 4, JSON.stringify(logs.lines.map((l) => l.msg)));
      // Mosquitto 2.0 closes the connection without a DISCONNECT (no reason code 0x8E, even
      // in MQTT 5): the agent tells it by the connection closing before it was stable.
      assert.match(String(warned[0]?.msg), /another client using this device's client id/);
      // A connection that stays up past the stable time starts the backoff over.
      clock.advance(30_000);
      await impostor();
      await waitFor(() => conn.delays.length === 5, 5000, 'reconnect after a stable connection');
      assert.equal(conn.delays[4], 1000);
    } finally {
      await conn.stop();
      for (const c of impostors) await c.endAsync(true).catch(() => undefined);
      await t.close(true);
    }
  });
}
