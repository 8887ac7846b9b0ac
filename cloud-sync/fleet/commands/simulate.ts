// `perch fleet simulate --devices N`: N simulated devices in this process (simulate/), speaking
// the device side of docs/protocol.md section 5, so rollouts and `serve` can be tried on thousands
// of devices on one machine. Runs until SIGTERM/SIGINT; prints JSON lines.
import { parseArgs } from 'node:util';
import { deviceIdSchema } from '../../protocol/schemas.js';
import { optionalIntArg, positiveIntArg } from '../cli/args.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from '../cli/options.js';
import { startSimulation } from '../simulate/sim-fleet.js';

export const SIMULATE_HELP = `perch fleet simulate --devices N [--broker URL] [--id-prefix P] [--labels k=v,...]
                     [--shards N] [--failure-rate R] [--unhealthy-rate R]
                     [--trusted-keys FILE | --allow-unsigned] [--events-per-second E]
                     [--events-per-batch B] [--connect-rate N] [--report-ms MS] [--progress-ms MS]

Runs N simulated devices in this process, each on its own MQTT connection (client id = device
id = P + index, default 'sim-0000'...), until SIGTERM/SIGINT. Each one publishes a retained status
with its labels (--labels for all, plus shard=index mod --shards, default 10; 0 = none) and the
offline Last Will; applies desired documents as a device does (version only rises; downgrade,
signature against --trusted-keys (Ed25519 PEM; --allow-unsigned takes unsigned models) and size
checked before any byte; bytes as MQTT chunks, or over HTTP Range when the spec has a url;
size and digest verified); "installs" a verified version, which fails to load for a share
--failure-rate of devices (default 0); reports state/reported with in-service health (a share
--unhealthy-rate reports an error rate of 0.5); obeys the rollback command; sends
--events-per-second events each (default 0) in batches of --events-per-batch (default 10), kept
until the fleet acks them. Which devices fail is decided by a hash of device id and version, so a
run is repeatable. No model bytes are kept: they are hashed as they arrive.
Prints 'simulate ready', then 'progress' every --progress-ms (default 10000): online devices and
counters. Each device holds one socket: check ulimit -n (docs/fleet.md "Simulating a fleet").

  --broker URL        the broker (same as --url)
  --connect-rate N    new connections per second at most (default 500)
  --report-ms MS      state/reported again this often with fresh health (default 30000; 0 = on change only)

${COMMON_HELP}`;

export async function simulateCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      devices: { type: 'string' }, broker: { type: 'string' }, 'id-prefix': { type: 'string' }, labels: { type: 'string' }, shards: { type: 'string' },
      'failure-rate': { type: 'string' }, 'unhealthy-rate': { type: 'string' }, 'trusted-keys': { type: 'string' }, 'allow-unsigned': { type: 'boolean' },
      'events-per-second': { type: 'string' }, 'events-per-batch': { type: 'string' }, 'connect-rate': { type: 'string' },
      'report-ms': { type: 'string' }, 'progress-ms': { type: 'string' },
    },
  });
  if (values.help) {
    out.write(SIMULATE_HELP);
    return 0;
  }
  const opts = fleetOptions({ ...values, url: values.broker ?? values.url });
  const devices = positiveIntArg(values.devices, 'devices');
  if (devices > 100_000) throw new UsageError('--devices: at most 100000 in one process');
  const idPrefix = values['id-prefix'] ?? 'sim-';
  if (!deviceIdSchema.safeParse(`${idPrefix}${devices}`).success) throw new UsageError(`--id-prefix '${idPrefix}' does not make valid device ids`);
  const trustedKeysFile = values['trusted-keys'] ?? null;
  if (!trustedKeysFile && !values['allow-unsigned']) throw new UsageError('--trusted-keys FILE or --allow-unsigned is required (as a device needs cloud.trustedKeysFile or cloud.allowUnsignedModels)');
  const b = opts.broker;
  const sim = await startSimulation({
    url: b.url, prefix: opts.prefix, devices, idPrefix,
    labels: parseLabels(values.labels), shards: optionalIntArg(values.shards, 'shards', 0) ?? 10,
    failureRate: rate(values['failure-rate'], 'failure-rate'), unhealthyRate: rate(values['unhealthy-rate'], 'unhealthy-rate'),
    signature: { trustedKeysFile, allowUnsignedModels: values['allow-unsigned'] ?? false },
    maxModelBytes: 2 * 1024 ** 3, windowChunks: 16, chunkTimeoutMs: 10_000,
    eventsPerSecond: rate(values['events-per-second'], 'events-per-second', 1000), eventsPerBatch: optionalIntArg(values['events-per-batch'], 'events-per-batch') ?? 10,
    reportMs: optionalIntArg(values['report-ms'], 'report-ms', 0) ?? 30_000,
    connectPerSecond: optionalIntArg(values['connect-rate'], 'connect-rate') ?? 500,
    connect: {
      ...(b.ca ? { ca: b.ca } : {}), ...(b.cert ? { cert: b.cert } : {}), ...(b.key ? { key: b.key } : {}),
      ...(b.username !== undefined ? { username: b.username } : {}), ...(b.password !== undefined ? { password: b.password } : {}),
    },
  });
  const line = (msg: string): void => {
    out.write(`${JSON.stringify({ msg, time: Date.now(), devices, online: sim.online(), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), ...sim.stats })}\n`);
  };
  line('simulate ready');
  const progressMs = optionalIntArg(values['progress-ms'], 'progress-ms', 0) ?? 10_000;
  const timer = progressMs > 0 ? setInterval(() => line('progress'), progressMs) : null;
  const stop = (): void => {
    if (timer) clearInterval(timer);
    void sim.stop().then(() => {
      line('simulate stopped');
      process.exitCode = 0;
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return -1;
}

function rate(v: string | undefined, flag: string, max = 1): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new UsageError(`--${flag} must be a number from 0 to ${max}, got '${v}'`);
  return n;
}

/** `k=v,k=v`: the shape of config device.labels (docs/config.md). */
export function parseLabels(v: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (v === undefined || v === '') return labels;
  for (const pair of v.split(',')) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_.\-/]{0,62})=([A-Za-z0-9_.:\-/]{0,63})$/.exec(pair.trim());
    if (!m?.[1]) throw new UsageError(`--labels '${pair}': key=value, letters, digits and _ . - / (values also :)`);
    labels[m[1]] = m[2] ?? '';
  }
  return labels;
}
