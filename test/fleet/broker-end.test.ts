// endBroker (cloud-sync/fleet/broker/connect.ts): a client of serve's, ended, never reconnects,
// whatever closes after its end. MQTT.js clears `disconnecting` at the end of an end() for
// clients made with manualConnect, so a socket of an earlier connect attempt closing later set
// the reconnect interval up again (test/fleet/serve.test.ts hung that way under load).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectBroker, endBroker } from '../../cloud-sync/fleet/broker/connect.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';

describe('endBroker', () => {
  let broker: Mosquitto;
  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await broker?.close();
  });

  test('a close after the end sets up no reconnect', async () => {
    const client = await connectBroker({ url: broker.url, timeoutMs: 3000 }, { reconnectPeriodMs: 1000 });
    await endBroker(client);
    // What the late socket's close does: the client's own 'close' handler runs again.
    client.emit('close');
    const timer = (client as unknown as { reconnectTimer: NodeJS.Timeout | null }).reconnectTimer;
    if (timer) clearInterval(timer); // so that a failure does not hold the file open
    assert.equal(timer, null, 'a reconnect was set up after the end');
    assert.equal(client.reconnecting, false);
  });
});
