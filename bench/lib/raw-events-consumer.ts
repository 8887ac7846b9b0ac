// The raw baseline of bench/fleet-scale.ts's event ingestion, as its own process (so its CPU time
// is its own): a bare mqtt.js client subscribed to every device's events topic, QoS 1, the way
// `mosquitto_sub -t 'perch/v1/devices/+/events'` would be, counting the messages and the events
// in them (JSON.parse: the least a consumer must do to count events). No database, no acks.
// It counts two things (docs/benchmarks.md "Fleet scale", what is counted): every event it
// receives (`events`, re-sends included: a device sends a batch again when no ack came within
// its timeout, and this client sees every copy), and the distinct (device, seq) events among them
// (`unique`), which is what a store that deduplicates can store at most. serve's `eventsStored`
// is the counterpart of `unique`; its `eventsStored + duplicates` the counterpart of `events`.
// Run: node dist/bench/lib/raw-events-consumer.js URL PREFIX; prints a JSON line every second.
import mqtt from 'mqtt';
import { fleetTopics } from '../../cloud-sync/protocol/topics.js';
import { SeqSet } from './seq-set.js';

const [url, prefix] = process.argv.slice(2);
if (!url || !prefix) throw new Error('usage: raw-events-consumer.js URL PREFIX');

let messages = 0;
let events = 0;
let unique = 0;
const seen = new Map<string, SeqSet>();
const client = mqtt.connect(url, { protocolVersion: 5, clean: true, reconnectPeriod: 1000, clientId: `raw-consumer-${process.pid}` });
client.on('error', () => undefined);
client.on('message', (topic, payload) => {
  messages++;
  // P/devices/{id}/events: the device is the topic's, as serve takes it.
  const parts = topic.split('/');
  const deviceId = parts[parts.length - 2] ?? '';
  let set = seen.get(deviceId);
  if (!set) seen.set(deviceId, (set = new SeqSet()));
  try {
    const batch = JSON.parse(payload.toString('utf8')) as { events?: Array<{ seq?: unknown }> };
    if (!Array.isArray(batch.events)) return;
    events += batch.events.length;
    for (const e of batch.events) if (typeof e.seq === 'number' && set.add(e.seq)) unique++;
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
setInterval(() => process.stdout.write(`${JSON.stringify({ msg: 'count', t: Date.now(), messages, events, unique })}\n`), 1000);
process.once('SIGTERM', () => {
  client.end(true, () => process.exit(0));
});
