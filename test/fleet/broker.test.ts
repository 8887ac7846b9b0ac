// The Mosquitto harness itself, mutual TLS, and the example ACL of packaging/mosquitto/ (with a
// real broker): device A cannot read device B's desired state nor publish into B's topics.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { PerchError } from '../../runtime/base/errors.js';
import { connectBroker } from '../../cloud-sync/fleet/broker/connect.js';
import { topics } from '../../cloud-sync/protocol/topics.js';
import { waitFor } from '../helpers/clients.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';
import { announceDevice, collect, fleet, mqttClient, PREFIX } from './harness.js';

describe('mosquitto helper', () => {
  test('retained messages survive a SIGKILL and a restart on the same port', async () => {
    const broker = await startMosquitto();
    try {
      const c = await mqttClient(broker.url);
      await c.publishAsync('perch/v1/devices/x/state/desired', '{"version":7}', { qos: 1, retain: true });
      await c.endAsync();
      const port = broker.port;
      await broker.kill();
      assert.equal(broker.running, false);
      await broker.restart();
      assert.equal(broker.port, port);
      const r = await mqttClient(broker.url);
      const got = collect(r, () => true);
      await r.subscribeAsync('perch/v1/devices/x/state/desired', { qos: 1 });
      await waitFor(() => got.length === 1, 5000, 'the retained message after restart');
      assert.equal(got[0]?.payload.toString(), '{"version":7}');
      await r.endAsync();
    } finally {
      await broker.close();
    }
  });
});

describe('password file and the example ACL', () => {
  test('users from mosquitto_passwd: the right password connects, a wrong one is refused; fleet --username works', async () => {
    const broker = await startMosquitto({
      allowAnonymous: false,
      users: { 'dev-a': 'secret-a', 'perch-fleet': 'secret-f' },
      acl: readFileSync(join(REPO_ROOT, 'packaging', 'mosquitto', 'acl.conf'), 'utf8'),
    });
    try {
      const a = await mqttClient(broker.url, { clientId: 'dev-a', username: 'dev-a', password: 'secret-a' });
      await announceDevice(a, 'dev-a');
      await a.endAsync();
      await assert.rejects(
        connectBroker({ url: broker.url, timeoutMs: 3000, username: 'dev-a', password: 'wrong' }),
        (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_BROKER_UNREACHABLE',
      );
      const r = await fleet(['devices', '--json', '--url', broker.url, '--username', 'perch-fleet', '--password', 'secret-f', '--store', broker.dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((JSON.parse(r.stdout) as Array<{ deviceId: string }>).map((d) => d.deviceId), ['dev-a']);
    } finally {
      await broker.close();
    }
  });
});

describe('mutual TLS and the example ACL', () => {
  let pki: TestPki;
  let broker: Mosquitto;
  const clients: MqttClient[] = [];
  const tlsOpts = (name: string) => ({
    ca: readFileSync(pki.ca),
    cert: readFileSync(pki.clients[name]?.cert ?? ''),
    key: readFileSync(pki.clients[name]?.key ?? ''),
    rejectUnauthorized: true,
  });
  const connectAs = async (name: string): Promise<MqttClient> => {
    const c = await mqttClient(broker.tlsUrl, { clientId: name, ...tlsOpts(name) });
    clients.push(c);
    return c;
  };

  before(async () => {
    pki = createTestPki(['dev-a', 'dev-b', 'perch-fleet']);
    broker = await startMosquitto({
      plain: false,
      allowAnonymous: false,
      acl: readFileSync(join(REPO_ROOT, 'packaging', 'mosquitto', 'acl.conf'), 'utf8'),
      tls: { cafile: pki.ca, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true, useIdentityAsUsername: true },
    });
  });
  after(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await broker?.close();
    pki?.cleanup();
  });

  test('a client with a CA-signed certificate connects; a self-signed one and one without a certificate are refused', async () => {
    await connectAs('dev-a');
    const base = { url: broker.tlsUrl, timeoutMs: 3000, ca: readFileSync(pki.ca) };
    await assert.rejects(
      connectBroker({ ...base, cert: readFileSync(pki.selfSigned.cert), key: readFileSync(pki.selfSigned.key) }),
      (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_BROKER_UNREACHABLE',
    );
    await assert.rejects(connectBroker(base), (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_BROKER_UNREACHABLE');
  });

  test('perch fleet works over mutual TLS (--ca/--cert/--key)', async () => {
    const a = await connectAs('dev-a');
    await announceDevice(a, 'dev-a');
    const r = await fleet(['devices', '--json', '--url', broker.tlsUrl, '--ca', pki.ca,
      '--cert', pki.clients['perch-fleet']?.cert ?? '', '--key', pki.clients['perch-fleet']?.key ?? '', '--store', pki.dir]);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as Array<{ deviceId: string; online: boolean }>;
    assert.deepEqual(list.map((d) => [d.deviceId, d.online]), [['dev-a', true]]);
  });

  test('device A cannot read B\'s retained desired state nor publish into B\'s topics', async () => {
    const fleetClient = await connectAs('perch-fleet');
    const ta = topics(PREFIX, 'dev-a');
    const tb = topics(PREFIX, 'dev-b');
    await fleetClient.publishAsync(tb.desired, '{"version":1,"models":{},"config":{"secret":"b"}}', { qos: 1, retain: true });
    await fleetClient.publishAsync(ta.desired, '{"version":1,"models":{},"config":{}}', { qos: 1, retain: true });

    const a = await connectAs('dev-a');
    const seenByA = collect(a, () => true);
    // Mosquitto 2.0 grants these subscriptions and checks the ACL on each delivery instead,
    // so what counts is that nothing of B's arrives, not the SUBACK.
    await a.subscribeAsync(tb.desired, { qos: 1 });
    await a.subscribeAsync(`${PREFIX}/devices/+/state/desired`, { qos: 1 });
    await a.subscribeAsync(ta.desired, { qos: 1 });
    // A's own retained document arrives after anything the earlier subscriptions could deliver.
    await waitFor(() => seenByA.some((m) => m.topic === ta.desired), 5000, "A's own desired state");
    assert.deepEqual(seenByA.filter((m) => m.topic !== ta.desired), [], `A saw: ${seenByA.map((m) => m.topic).join(', ')}`);

    // Publishing into B's topics: the broker drops it (MQTT 5 PUBACK 0x87) and nobody receives it.
    const seenByFleet = collect(fleetClient, (t) => t.endsWith('/events'));
    await fleetClient.subscribeAsync(`$share/perch-fleet/${PREFIX}/devices/+/events`, { qos: 1 });
    await a.publishAsync(tb.events, '{"deviceId":"dev-b","events":[]}', { qos: 1 }).catch(() => undefined);
    await a.publishAsync(tb.desired, '{"version":99,"models":{},"config":{}}', { qos: 1, retain: true }).catch(() => undefined);
    await a.publishAsync(ta.events, '{"deviceId":"dev-a","events":[]}', { qos: 1 });
    await waitFor(() => seenByFleet.some((m) => m.topic === ta.events), 5000, "A's own event batch at the fleet");
    assert.deepEqual(seenByFleet.map((m) => m.topic), [ta.events]);

    const r = await fleet(['devices', '--json', '--url', broker.tlsUrl, '--ca', pki.ca,
      '--cert', pki.clients['perch-fleet']?.cert ?? '', '--key', pki.clients['perch-fleet']?.key ?? '', '--store', pki.dir]);
    const list = JSON.parse(r.stdout) as Array<{ deviceId: string; desiredVersion: number | null }>;
    assert.equal(list.find((d) => d.deviceId === 'dev-b')?.desiredVersion, 1, "B's desired state unchanged");
  });
});

describe('client ids bound to the certificate identity (packaging/mosquitto/mosquitto.conf)', () => {
  // The devices' listener of the example config: use_username_as_clientid true.
  const conf = readFileSync(join(REPO_ROOT, 'packaging', 'mosquitto', 'mosquitto.conf'), 'utf8');
  let pki: TestPki;
  let broker: Mosquitto;
  const clients: MqttClient[] = [];

  before(async () => {
    assert.match(conf, /listener 8883[^]*use_username_as_clientid true[^]*listener 8884/, 'the example binds client ids on the devices\' listener');
    pki = createTestPki(['dev-a', 'dev-b']);
    broker = await startMosquitto({
      plain: false,
      allowAnonymous: false,
      acl: readFileSync(join(REPO_ROOT, 'packaging', 'mosquitto', 'acl.conf'), 'utf8'),
      tls: { cafile: pki.ca, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true, useIdentityAsUsername: true, useUsernameAsClientid: true },
    });
  });
  after(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await broker?.close();
    pki?.cleanup();
  });

  test("a client with B's certificate connecting with A's client id does not knock A off", async () => {
    const connect = async (cert: string, clientId: string): Promise<MqttClient> => {
      const c = await mqttClient(broker.tlsUrl, {
        clientId, ca: readFileSync(pki.ca), cert: readFileSync(pki.clients[cert]?.cert ?? ''), key: readFileSync(pki.clients[cert]?.key ?? ''), rejectUnauthorized: true,
      });
      clients.push(c);
      return c;
    };
    const a = await connect('dev-a', 'dev-a');
    let aClosed = false;
    a.on('close', () => (aClosed = true));
    // The impostor gets its CONNACK only after the broker handled its client id: a takeover of
    // A's session would have closed A's socket by then.
    const impostor = await connect('dev-b', 'dev-a');
    // A still works: a round trip on its own connection, and its own retained topic reads back.
    const ta = topics(PREFIX, 'dev-a');
    // (A displaced A would never get the PUBACK: mqtt.js keeps the message for a reconnect.)
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no PUBACK: A was displaced')), 5000)));
    await Promise.race([a.publishAsync(ta.status, '{"online":true}', { qos: 1, retain: true }), late]).finally(() => clearTimeout(timer));
    const seen = collect(a, (t) => t === ta.status);
    await a.subscribeAsync(ta.status, { qos: 1 });
    await waitFor(() => seen.length === 1, 5000, "A's own status");
    assert.equal(aClosed, false, 'A was not displaced');
    // The impostor got B's identity as its client id: it is confined to B's topics.
    const tb = topics(PREFIX, 'dev-b');
    await impostor.publishAsync(tb.status, '{"online":true}', { qos: 1, retain: true });
    assert.equal(impostor.connected, true);
  });
});
