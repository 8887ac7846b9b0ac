// Which devices a fleet command acts on (docs/fleet.md "Targeting devices"): `--device ID`
// (repeatable), `--select key=value[,key=value]` (every pair must match the labels the device
// reported, config `device.labels`) or `--all` (every device the fleet store knows). Exactly one
// of the three: none, or two at once, is a usage error; a selection that matches no device is
// PERCH_ERR_NO_DEVICES_SELECTED, never a silent no-op.
import { PerchError } from '../../../runtime/base/errors.js';
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, MAX_LABELS } from '../../../runtime/config/labels.js';
import { deviceIdSchema } from '../../protocol/schemas.js';
import { UsageError } from './options.js';

export type Targets =
  | { kind: 'devices'; ids: string[] }
  | { kind: 'select'; labels: Record<string, string> }
  | { kind: 'all' };

export const TARGET_OPTIONS = {
  device: { type: 'string', multiple: true },
  select: { type: 'string' },
  all: { type: 'boolean' },
} as const;

export const TARGET_HELP = `Devices (exactly one of):
  --device ID          a device; repeat for several
  --select K=V[,K=V]   every device whose reported labels (config device.labels) hold all pairs
  --all                every device the fleet store knows (perch fleet devices)
`;

/** At most this many --device flags in one command. */
export const MAX_DEVICE_FLAGS = 10_000;

export function parseTargets(values: { device?: string[] | undefined; select?: string | undefined; all?: boolean | undefined }): Targets {
  const given = [values.device?.length ? '--device' : null, values.select !== undefined ? '--select' : null, values.all ? '--all' : null].filter((x) => x !== null);
  if (given.length === 0) throw new UsageError('name the devices: --device ID (repeatable), --select key=value[,key=value] or --all');
  if (given.length > 1) throw new UsageError(`ambiguous target: ${given.join(' and ')} given; use exactly one of --device, --select, --all`);
  if (values.all) return { kind: 'all' };
  if (values.select !== undefined) return { kind: 'select', labels: parseSelector(values.select) };
  const ids = values.device ?? [];
  if (ids.length > MAX_DEVICE_FLAGS) throw new UsageError(`at most ${MAX_DEVICE_FLAGS} --device flags; use --select or --all`);
  for (const id of ids) {
    if (!deviceIdSchema.safeParse(id).success) throw new UsageError(`--device '${id}': letters, digits and _ . : - only (1-128 characters)`);
  }
  return { kind: 'devices', ids: [...new Set(ids)] };
}

export function parseSelector(text: string): Record<string, string> {
  if (text.trim() === '') throw new UsageError('--select needs key=value[,key=value]');
  const labels: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--select: '${pair}' is not key=value`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (!LABEL_KEY_PATTERN.test(key)) throw new UsageError(`--select: '${key}' is not a label key (letters, digits and _ . - /, 1-63 characters)`);
    if (!LABEL_VALUE_PATTERN.test(value)) throw new UsageError(`--select: '${value}' is not a label value (letters, digits and _ . : - /, at most 63 characters)`);
    if (Object.hasOwn(labels, key) && labels[key] !== value) throw new UsageError(`--select: '${key}' given twice with different values; no device can match`);
    labels[key] = value;
  }
  if (Object.keys(labels).length > MAX_LABELS) throw new UsageError(`--select: at most ${MAX_LABELS} pairs`);
  return labels;
}

/** What the resolver needs of a stored device: its id and its last status and reported documents. */
export interface KnownDevice {
  deviceId: string;
  status: unknown;
  reported: unknown;
}

/** The labels a device last reported: its status's, else its reported state's; {} when none. */
export function labelsOf(d: Pick<KnownDevice, 'status' | 'reported'>): Record<string, string> {
  for (const doc of [d.status, d.reported]) {
    const labels = (doc as { labels?: unknown } | null)?.labels;
    if (typeof labels === 'object' && labels !== null && !Array.isArray(labels)) return labels as Record<string, string>;
  }
  return {};
}

export function matches(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** Device ids in id order for --select/--all, in the order given for --device (checked by the command). */
export function resolveTargets(targets: Targets, known: readonly KnownDevice[]): string[] {
  if (targets.kind === 'devices') return targets.ids;
  const ids = known
    .filter((d) => targets.kind === 'all' || matches(labelsOf(d), targets.labels))
    .map((d) => d.deviceId)
    .sort();
  if (ids.length === 0) {
    const what = targets.kind === 'all' ? '--all' : `--select ${Object.entries(targets.labels).map(([k, v]) => `${k}=${v}`).join(',')}`;
    throw new PerchError('PERCH_ERR_NO_DEVICES_SELECTED', `${what} matches no device the fleet store knows (perch fleet devices lists them; devices appear once perch fleet serve has seen their status)`);
  }
  return ids;
}

export function describeTargets(targets: Targets): string {
  if (targets.kind === 'all') return '--all';
  if (targets.kind === 'select') return `--select ${Object.entries(targets.labels).map(([k, v]) => `${k}=${v}`).join(',')}`;
  return targets.ids.map((id) => `--device ${id}`).join(' ');
}
