// `perch fleet devices`: one row per device the fleet knows, from the broker's retained status,
// reported and desired documents (read live, with the deadline) and, when present, the fleet
// database (events stored, and devices whose retained documents are gone).
import { parseArgs } from 'node:util';
import { parsePayload } from '../../protocol/parse.js';
import { desiredSchema, reportedSchema, statusSchema, type DesiredState, type ReportedState, type StatusMessage } from '../../protocol/schemas.js';
import { fleetTopics, parseTopic } from '../../protocol/topics.js';
import { openExistingFleetStore } from '../store/open.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions } from '../cli/options.js';
import { readRetained } from '../broker/retained.js';
import { withBroker } from '../broker/with-broker.js';
import { visibleCell } from '../cli/visible.js';

export const DEVICES_HELP = `perch fleet devices [--json]

A table of the devices the fleet knows: DEVICE, ONLINE, LABELS (config device.labels as
key=value pairs, what --select matches; '-' when none), DESIRED (desired document version),
REPORTED (the desired version the device last applied; "(ignored vN)" when it did not apply
desired version N, with the reason in --json), MODELS (name vVERSION status, chunks staged of
the total while downloading ("downloading 12/36"), the error code of a failed one, "-> vN"
when the desired version differs, "-> removed" while a removal is pending), CONFIG (ok, or "refused CODE" when the device refused the desired live
config), BACKLOG (events the device holds for the cloud, as it last reported them; '-' when it
sends none), EVENTS (events stored by serve / highest seq),
HELD (seqs the fleet store holds: first..highest contiguous) and GAPS (missing seqs between held
ones: a count and the first ranges; '-' when none). --json adds firstSeq, contiguousSeq, gaps
(up to 10 [from, to] ranges) and missing.
--json prints the same as a JSON array.

${COMMON_HELP}`;

export interface DeviceView {
  deviceId: string;
  online: boolean | null;
  /** Config device.labels as the device last sent them (status, else reported state); null: none sent. */
  labels: Record<string, string> | null;
  desiredVersion: number | null;
  reportedVersion: number | null;
  /** desiredVersion null with removing: the desired document removes the model (a null entry). */
  models: Array<{ name: string; version: number | null; status: string | null; error: string | null; progress: string | null; desiredVersion: number | null; removing: boolean }>;
  /** The refusal of the desired live config the device reported, or null. */
  configError: { code: string; message: string } | null;
  /** The last desired document the device did not apply, and why. */
  ignored: { version: number; reason: string } | null;
  backlog: number | null;
  backlogBytes: number | null;
  eventsStored: number;
  lastSeq: number | null;
  /** Lowest seq held, and the highest with every seq from firstSeq up to it held. */
  firstSeq: number | null;
  contiguousSeq: number | null;
  /** Missing seqs between held ones: the first ranges, and how many in all. */
  gaps: [number, number][];
  missing: number;
  status?: StatusMessage;
  reported?: ReportedState;
  desired?: DesiredState;
}

export async function devicesCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({ args, options: { ...COMMON_OPTIONS, json: { type: 'boolean' } } });
  if (values.help) {
    out.write(DEVICES_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const f = fleetTopics(opts.prefix);
  const retained = await withBroker(opts, (client) => readRetained(client, opts.prefix, [f.status, f.reported, f.desired], opts.broker.timeoutMs));

  const views = new Map<string, DeviceView>();
  const view = (id: string): DeviceView => {
    let v = views.get(id);
    if (!v) {
      v = { deviceId: id, online: null, labels: null, desiredVersion: null, reportedVersion: null, ignored: null, models: [], configError: null, backlog: null, backlogBytes: null, eventsStored: 0, lastSeq: null, firstSeq: null, contiguousSeq: null, gaps: [], missing: 0 };
      views.set(id, v);
    }
    return v;
  };
  for (const m of retained) {
    const t = parseTopic(opts.prefix, m.topic);
    if (!t) continue;
    const schema = t.kind === 'status' ? statusSchema : t.kind === 'reported' ? reportedSchema : desiredSchema;
    const parsed = parsePayload(schema, m.payload);
    if (!parsed.ok) {
      err.write(`perch fleet: ${m.topic}: ${parsed.error.code}: ${parsed.error.message}\n`);
      continue;
    }
    const v = view(t.deviceId);
    if (t.kind === 'status') v.status = parsed.value as StatusMessage;
    else if (t.kind === 'reported') v.reported = parsed.value as ReportedState;
    else v.desired = parsed.value as DesiredState;
  }
  const db = await openExistingFleetStore(opts);
  if (db) {
    try {
      for (const row of await db.devices()) {
        const v = view(row.deviceId);
        v.eventsStored = row.eventCount;
        v.lastSeq = row.lastSeq;
        Object.assign(v, await db.heldSeqs(row.deviceId));
        // Retained documents win (they are the broker's latest); the database fills gaps.
        if (!v.status && row.status) v.status = statusSchema.safeParse(row.status).data;
        if (!v.reported && row.reported) v.reported = reportedSchema.safeParse(row.reported).data;
      }
    } finally {
      await db.close();
    }
  }
  const list = [...views.values()].sort((a, b) => a.deviceId.localeCompare(b.deviceId));
  for (const v of list) summarize(v);
  if (values.json) {
    out.write(`${JSON.stringify(list.map(({ status: _s, reported: _r, desired: _d, ...rest }) => rest))}\n`);
  } else {
    out.write(table(list));
  }
  return 0;
}

function summarize(v: DeviceView): void {
  v.online = v.status ? v.status.online : null;
  // The same labels --select matches (cli/targets.ts): the status's, else the reported state's.
  v.labels = v.status?.labels ?? v.reported?.labels ?? null;
  v.desiredVersion = v.desired?.version ?? null;
  v.reportedVersion = v.reported?.desiredVersion ?? null;
  v.ignored = v.reported?.ignored ?? null;
  v.configError = v.reported?.configError ?? null;
  const outbox = v.reported?.outbox ?? v.status?.outbox;
  v.backlog = outbox?.count ?? null;
  v.backlogBytes = outbox?.bytes ?? null;
  // A model the desired document removes (a null entry) shows only while the device still
  // reports it; once gone from state/reported it is gone from the table.
  const desiredModels = Object.entries(v.desired?.models ?? {}).filter(([, d]) => d !== null).map(([n]) => n);
  const names = new Set([...Object.keys(v.reported?.models ?? {}), ...desiredModels]);
  v.models = [...names].sort().map((name) => {
    const r = v.reported?.models[name];
    const d = v.desired?.models[name];
    return {
      name,
      version: r?.version ?? null,
      status: r?.status ?? null,
      error: r?.error?.code ?? null,
      // A download in progress, as the device last reported it (at most once a second).
      progress: r?.progress && r.progress.total > 0 ? `${r.progress.staged}/${r.progress.total}` : null,
      desiredVersion: d ? d.version : null,
      removing: d === null,
    };
  });
}

function table(list: DeviceView[]): string {
  const header = ['DEVICE', 'ONLINE', 'LABELS', 'DESIRED', 'REPORTED', 'MODELS', 'CONFIG', 'BACKLOG', 'EVENTS', 'HELD', 'GAPS'];
  const rows = list.map((v) => ([
    v.deviceId,
    v.online === null ? '?' : v.online ? 'yes' : 'no',
    labelsCell(v.labels),
    v.desiredVersion === null ? '-' : String(v.desiredVersion),
    (v.reportedVersion === null ? '-' : String(v.reportedVersion)) + (v.ignored ? ` (ignored v${v.ignored.version})` : ''),
    v.models.map((m) => {
      const have = m.version === null ? `${m.name} -` : [m.name, `v${m.version}`, m.status, m.progress, m.error].filter((x) => x).join(' ');
      if (m.removing) return `${have} -> removed`;
      return m.desiredVersion !== null && m.desiredVersion !== m.version ? `${have} -> v${m.desiredVersion}` : have;
    }).join(', ') || '-',
    v.configError ? `refused ${v.configError.code}` : v.reported ? 'ok' : '-',
    v.backlog === null ? '-' : String(v.backlog),
    v.lastSeq === null ? String(v.eventsStored) : `${v.eventsStored} (seq ${v.lastSeq})`,
    v.firstSeq === null ? '-' : `${v.firstSeq}..${v.contiguousSeq}`,
    gapsCell(v),
  ]).map((c) => visibleCell(c))); // device text in a cell: no line breaks, tabs or escapes, at most MAX_CELL characters (cli/visible.ts)
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** `hw=pi4,site=kitchen` (keys sorted, as --select takes them), or '-' when none. */
function labelsCell(labels: Record<string, string> | null): string {
  const pairs = Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return pairs.length ? pairs.map(([k, val]) => `${k}=${val}`).join(',') : '-';
}

/** `3 missing: 5-6, 9` (the first three ranges, then `...`), or '-' when none. */
function gapsCell(v: DeviceView): string {
  if (v.missing === 0) return '-';
  const shown = v.gaps.slice(0, 3).map(([a, b]) => (a === b ? String(a) : `${a}-${b}`));
  return `${v.missing} missing: ${shown.join(', ')}${v.gaps.length > 3 ? ', ...' : ''}`;
}
