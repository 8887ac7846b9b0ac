// Mutual TLS against a real Mosquitto with an openssl-made PKI: a device whose certificate the
// CA signed connects (and its status is published); one with a self-signed certificate is
// refused and stays offline, retrying on its backoff.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCloudAgent } from '../../cloud-sync/agent/index.js';
import { captureLogger } from '../helpers/log-capture.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';
import { waitFor } from './helpers/mqtt-client.js';
import { makePort } from './helpers/port.js';

let pki: TestPki;
let broker: Mosquitto;
before(async () => {
  pki = createTestPki(['dev-tls-a']);
  broker = await startMosquitto({
    plain: false,
    tls: { cafile: pki.ca, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true, useIdentityAsUsername: true },
  });
});
after(async () => {
  await broker.close();
  pki.cleanup();
});

test('a device with a CA-signed certificate connects over mutual TLS', async () => {
  const cert = pki.clients['dev-tls-a'];
  assert.ok(cert);
  const t = makePort({ mqttUrl: broker.tlsUrl, deviceId: 'dev-tls-a', cloud: { caFile: pki.ca, certFile: cert.cert, keyFile: cert.key } });
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    await waitFor(() => agent.online, 10_000, 'online over mTLS');
  } finally {
    await agent.stop();
    await t.close(true);
  }
});

test('a device with a self-signed certificate is refused and stays offline', async () => {
  const { logger, lines } = captureLogger();
  const t = makePort({ mqttUrl: broker.tlsUrl, deviceId: 'rogue', log: logger, cloud: { caFile: pki.ca, certFile: pki.selfSigned.cert, keyFile: pki.selfSigned.key } });
  const agent = createCloudAgent(t.port);
  await agent.start(new AbortController().signal);
  try {
    // Two attempts refused and a third scheduled: the broker's answer is in, twice.
    await waitFor(() => lines.filter((l) => l.msg === 'reconnecting after a delay').length >= 2, 10_000, 'two refused attempts');
    assert.ok(lines.some((l) => l.msg === 'MQTT connection error' && l.code === 'PERCH_ERR_BROKER_UNREACHABLE'), 'the refusal is logged');
    assert.equal(agent.online, false);
    assert.equal(agent.stats().connects, 0);
  } finally {
    await agent.stop();
    await t.close(true);
  }
});
