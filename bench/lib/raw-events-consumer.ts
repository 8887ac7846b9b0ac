// The raw baseline of bench/fleet-scale.ts's event ingestion, as its own process (so its CPU time
// is its own): a bare mqtt.js client subscribed to every device's events topic, QoS 1, the way
// `mosquitto_sub -t 'perch/v1/devices/+/events'` would be, counting the messages and the events
// in them (JSON.parse: the least a consumer must do to count events). No database, no acks.
// Run: node dist/bench/lib/raw-events-consumer.js URL PREFIX; prints a JSON line every second.
import mqtt from 'mqtt';
import { fleetTopics } from '../../cloud-sync/protocol/topics.js';

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) throw new Error('usage: raw-events-consumer.js URL PREFIX');

let messages = 0;
let events = 0;
const client = mqtt.connect(url, { protocolVersion: 5, clean: true, reconnectPeriod: 1000, clientId: `raw-consumer-${process.pid}` });
client.on('error', () => undefined);
client.on('message', (_topic, payload) => {
  messages++;
  try {
    const batch = JSON.parse(payload.toString('utf8')) as { events?: unknown[] };
    events += Array.isArray(batch.events) ? batch.events.length : 0;
  } catch {
    // not an events batch: counted as a message only
  }
});
client.on('connect', () => {
  client.subscribe(fleetTopics(prefix).events, { qos: 1 }, (err) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ msg: 'raw consumer ready', t: Date.now() })}\n`);
  });
});
setInterval(() => process.stdout.write(`${JSON.stringify({ msg: 'count', t: Date.now(), messages, events })}\n`), 1000);
process.once('SIGTERM', () => {
  client.end(true, () => process.exit(0));
});
