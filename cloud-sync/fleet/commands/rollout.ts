// `perch fleet rollout start|status|pause|resume|abort|list` (docs/fleet.md "Rollouts"). These
// only read and write the fleet store: `perch fleet serve` (serve/rollout-controller.ts) drives
// the rollouts, wave by wave, from there.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PerchError } from '../../../runtime/base/errors.js';
import { modelNameArg, optionalIntArg, positiveIntArg, requireString } from '../cli/args.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from '../cli/options.js';
import { describeTargets, parseTargets, resolveTargets, TARGET_HELP, TARGET_OPTIONS } from '../cli/targets.js';
import { visibleCell } from '../cli/visible.js';
import { parseDuration, parsePercent, parsePositiveMs, parseRate, parseWaves, waveSizes } from '../rollout/plan.js';
import type { FleetStore } from '../store/fleet-store.js';
import { openFleetStore } from '../store/open.js';
import { putModel } from '../store/model-store.js';
import { buildSpec } from '../store/model-spec.js';
import type { RolloutDevice, RolloutRecord, RolloutState } from '../store/rollout-store.js';

/** Characters of a device's words on a `status` line, at most (--json has them whole). */
const MAX_LINE_TEXT = 300;

export const ROLLOUT_HELP = `perch fleet rollout start --model NAME --version N --file MODEL.onnx --sign-key PRIV.pem
                           (--device ID ... | --select K=V[,K=V] | --all)
                           --waves 1,10%,50%,100% --bake DURATION --max-failures PERCENT
                           [--health-error-rate R] [--health-p99-ms MS] [--offline-timeout DURATION]
                           [--config model.json] [--chunk-size BYTES]
perch fleet rollout status ID [--json]
perch fleet rollout pause ID | resume ID | abort ID
perch fleet rollout list [--json]

start stores the model (signed with --sign-key, as push does) and a rollout in the fleet store and
prints its id; perch fleet serve drives it. Wave by wave (each wave a device count or a percentage
of the targeted devices, cumulative, ending at 100%) the wave's devices get the version in their
desired state. A device passes when it reports the version active and, for --bake (0, 500ms, 30s,
5m, 1h), its in-service health for it (reported in state/reported) stays within
--health-error-rate (0..1) and --health-p99-ms; a device that fails to download, verify or load
it, or whose health goes over, fails; an offline device stays pending (it gets the version when it
is back), or, with --offline-timeout (30s, 10m, 1h), fails once its wave started that long ago
and it is still offline. The next wave starts when each device of this one passed or failed. When failed
devices pass --max-failures percent of the devices reached so far, the rollout aborts by itself:
no further device gets the version and each one that got it goes back to its previous version
(the rollback command for a device serving it, then its previous desired entry).
status --json: {"id","state","model","version","waves":[{"size","state"}],"devices":{ID:{"status","version","error"?}}}
pause stops new devices getting the version (devices already on it stay); resume goes on; abort
rolls back as above.

${TARGET_HELP}
${COMMON_HELP}`;

const SUBCOMMANDS = new Set(['start', 'status', 'pause', 'resume', 'abort', 'list']);

export async function rolloutCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    out.write(ROLLOUT_HELP);
    return 0;
  }
  if (!SUBCOMMANDS.has(sub)) throw new UsageError(`unknown rollout command '${sub}' (start, status, pause, resume, abort, list)`);
  if (sub === 'start') return start(rest, out);
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...COMMON_OPTIONS, json: { type: 'boolean' } } });
  if (values.help) {
    out.write(ROLLOUT_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const db = await openFleetStore(opts);
  try {
    if (sub === 'list') {
      if (positionals.length > 0) throw new UsageError('rollout list takes no id');
      return await list(db, values.json ?? false, out);
    }
    if (positionals.length !== 1) throw new UsageError(`rollout ${sub} takes one rollout id`);
    const id = positionals[0] as string;
    if (sub === 'status') return await status(db, id, values.json ?? false, out);
    return await change(db, id, sub as 'pause' | 'resume' | 'abort', out);
  } finally {
    await db.close();
  }
}

async function start(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS, ...TARGET_OPTIONS,
      model: { type: 'string' }, version: { type: 'string' }, file: { type: 'string' }, 'sign-key': { type: 'string' },
      config: { type: 'string' }, 'chunk-size': { type: 'string' },
      waves: { type: 'string' }, bake: { type: 'string' }, 'max-failures': { type: 'string' },
      'health-error-rate': { type: 'string' }, 'health-p99-ms': { type: 'string' }, 'offline-timeout': { type: 'string' },
    },
  });
  if (values.help) {
    out.write(ROLLOUT_HELP);
    return 0;
  }
  // As in push: --key is the broker's TLS key; the model is signed with --sign-key.
  if (values.key !== undefined && values.cert === undefined && values['sign-key'] === undefined) {
    throw new UsageError('--key is the TLS client key and needs --cert; sign the model with --sign-key');
  }
  const opts = fleetOptions(values);
  const targets = parseTargets(values);
  const name = modelNameArg(values.model);
  const version = positiveIntArg(values.version, 'version');
  const file = requireString(values.file, 'file');
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`--file ${file} is not a file`);
  const waves = parseWaves(requireString(values.waves, 'waves'));
  const bakeMs = parseDuration(requireString(values.bake, 'bake'), 'bake');
  const maxFailuresPercent = parsePercent(requireString(values['max-failures'], 'max-failures'), 'max-failures');
  const healthErrorRate = values['health-error-rate'] === undefined ? null : parseRate(values['health-error-rate'], 'health-error-rate');
  const healthP99Ms = values['health-p99-ms'] === undefined ? null : parsePositiveMs(values['health-p99-ms'], 'health-p99-ms');
  const offlineTimeoutMs = values['offline-timeout'] === undefined ? null : parseDuration(values['offline-timeout'], 'offline-timeout');

  const db = await openFleetStore(opts);
  try {
    const known = await db.devices();
    const ids = resolveTargets(targets, known);
    if (targets.kind === 'devices') {
      const knownIds = new Set(known.map((d) => d.deviceId));
      const unknown = ids.filter((id) => !knownIds.has(id));
      if (unknown.length) throw new PerchError('PERCH_ERR_DEVICE_UNKNOWN', `the fleet store has never heard from ${unknown.map((u) => `'${u}'`).join(', ')} (perch fleet serve records devices as they report)`);
    }
    const spec = await buildSpec({
      name, version, file, keyFile: values['sign-key'], chunkSize: optionalIntArg(values['chunk-size'], 'chunk-size'), configFile: values.config,
    });
    putModel(opts.store, name, spec, file);
    const sizes = waveSizes(waves, ids.length);
    const devices: RolloutDevice[] = [];
    let next = 0;
    sizes.forEach((size, wave) => {
      for (const deviceId of ids.slice(next, next + size)) {
        devices.push({
          deviceId, wave, status: 'pending', version: null, error: null, previousSpec: null, previousActive: null,
          desiredVersion: null, activeSince: null, passed: false, rollback: 'none',
        });
      }
      next += size;
    });
    const now = Date.now();
    const rollout: RolloutRecord = {
      id: `ro-${now.toString(36)}-${randomBytes(3).toString('hex')}`,
      model: name, version, spec, target: describeTargets(targets),
      waves: sizes.map((size) => ({ size, state: 'pending' })),
      bakeMs, maxFailuresPercent, healthErrorRate, healthP99Ms, offlineTimeoutMs,
      state: 'running', reason: null, settled: false, createdAt: now, updatedAt: now, revision: 1,
    };
    await db.rollouts.createRollout(rollout, devices);
    out.write(`${rollout.id}\n`);
    return 0;
  } finally {
    await db.close();
  }
}

/** The `status --json` document (docs/fleet.md "Rollouts"). */
export function statusDocument(r: RolloutRecord, devices: readonly RolloutDevice[]): Record<string, unknown> {
  return {
    id: r.id,
    state: r.state,
    model: r.model,
    version: r.version,
    waves: r.waves.map((w) => ({ size: w.size, state: w.state })),
    devices: Object.fromEntries(devices.map((d) => [d.deviceId, { status: d.status, version: d.version, ...(d.error !== null ? { error: d.error } : {}) }])),
  };
}

async function found(db: FleetStore, id: string): Promise<RolloutRecord> {
  const r = await db.rollouts.rollout(id);
  if (!r) throw new PerchError('PERCH_ERR_ROLLOUT_NOT_FOUND', `no rollout '${id}' in the fleet store (perch fleet rollout list)`);
  return r;
}

async function status(db: FleetStore, id: string, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const r = await found(db, id);
  const devices = await db.rollouts.rolloutDevices(id);
  if (json) {
    out.write(`${JSON.stringify(statusDocument(r, devices))}\n`);
    return 0;
  }
  // Reasons and errors carry the devices' words (cli/visible.ts): one line each, cut (--json has them whole).
  out.write(`${r.id}  ${r.state}  ${r.model} v${r.version}  ${r.target}${r.reason ? `  (${visibleCell(r.reason, MAX_LINE_TEXT)})` : ''}\n`);
  out.write(`waves: ${r.waves.map((w, i) => `#${i + 1} ${w.size} ${w.state}`).join(', ')}\n`);
  for (const d of devices) out.write(`  ${d.deviceId}  wave ${d.wave + 1}  ${d.status}${d.version !== null ? ` v${d.version}` : ''}${d.error ? `  ${visibleCell(d.error, MAX_LINE_TEXT)}` : ''}\n`);
  return 0;
}

async function list(db: FleetStore, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const rows: Array<Record<string, unknown>> = [];
  for (const r of await db.rollouts.list()) {
    const devices = await db.rollouts.rolloutDevices(r.id);
    const counts: Record<string, number> = {};
    for (const d of devices) counts[d.status] = (counts[d.status] ?? 0) + 1;
    rows.push({ id: r.id, state: r.state, model: r.model, version: r.version, target: r.target, createdAt: r.createdAt, devices: counts });
  }
  if (json) {
    out.write(`${JSON.stringify(rows)}\n`);
    return 0;
  }
  for (const row of rows) {
    const counts = Object.entries(row.devices as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(', ');
    out.write(`${String(row.id)}  ${String(row.state)}  ${String(row.model)} v${String(row.version)}  ${String(row.target)}  ${counts}\n`);
  }
  return 0;
}

const TRANSITIONS: Record<'pause' | 'resume' | 'abort', { to: RolloutState; from: RolloutState[] }> = {
  pause: { to: 'paused', from: ['running'] },
  resume: { to: 'running', from: ['paused'] },
  abort: { to: 'aborted', from: ['running', 'paused'] },
};

async function change(db: FleetStore, id: string, what: 'pause' | 'resume' | 'abort', out: NodeJS.WritableStream): Promise<number> {
  const t = TRANSITIONS[what];
  const result = await db.rollouts.setRolloutState(id, t.to, t.from, what === 'abort' ? 'aborted by perch fleet rollout abort' : null, Date.now());
  if (!result) throw new PerchError('PERCH_ERR_ROLLOUT_NOT_FOUND', `no rollout '${id}' in the fleet store (perch fleet rollout list)`);
  // Asking again for the state it is already in is not an error (a retried command).
  if (!result.changed && result.rollout.state !== t.to) {
    throw new PerchError('PERCH_ERR_ROLLOUT_STATE', `rollout '${id}' is ${result.rollout.state}: ${what} applies to a ${t.from.join(' or ')} rollout`);
  }
  out.write(`${id} ${result.rollout.state}\n`);
  return 0;
}
