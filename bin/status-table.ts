// The table `perch status` prints (docs/cli.md), from the GET /v1/status document.

export interface DeviceStatus {
  device?: { id?: string; version?: string; uptimeMs?: number };
  models?: Array<{ name: string; version: number | null; ready: boolean; loadsOnFirstUse?: boolean }>;
  queue?: Record<string, number>;
  sequences?: Record<string, number>;
  outbox?: { count: number; bytes: number; oldestAgeMs: number; unsent: number; awaitingAck: number };
  connectivity?: string;
  cloud?: { broker: string | null; connectivity?: string };
  modelChanges?: Array<{ at: number; type: string; payload: unknown }>;
}

export function formatStatus(s: DeviceStatus, origin: string, now: number): string {
  const lines: string[] = [];
  const d = s.device ?? {};
  lines.push(`device        ${d.id ?? '?'}  perch ${d.version ?? '?'}  up ${duration(d.uptimeMs ?? 0)}  (${origin})`);
  const cloud = s.cloud?.broker ?? 'none configured';
  lines.push(`cloud         ${s.connectivity ?? '?'}  ${cloud}`);
  const o = s.outbox;
  if (o) {
    const oldest = o.count > 0 ? `, oldest ${duration(o.oldestAgeMs)} old` : '';
    lines.push(`outbox        ${o.count} event${o.count === 1 ? '' : 's'} (${bytes(o.bytes)})${oldest}; ${o.unsent} unsent, ${o.awaitingAck} awaiting ack`);
  }
  const changes = s.modelChanges ?? [];
  const last = changes[0];
  lines.push(`last update   ${last ? `${describe(last)}, ${duration(now - last.at)} ago` : 'none since start'}`);
  lines.push('');
  const rows: string[][] = [['MODEL', 'VERSION', 'READY', 'QUEUE', 'SEQUENCES']];
  for (const m of s.models ?? []) {
    rows.push([
      m.name, m.version === null ? '-' : String(m.version), m.ready ? (m.loadsOnFirstUse ? 'on first use' : 'yes') : 'NO',
      String(s.queue?.[m.name] ?? 0), String(s.sequences?.[m.name] ?? 0),
    ]);
  }
  if (rows.length === 1) lines.push('no models');
  else lines.push(...table(rows));
  if (changes.length > 1) {
    lines.push('', 'model changes (newest first)');
    for (const c of changes.slice(0, 10)) lines.push(`  ${new Date(c.at).toISOString().slice(11, 19)}  ${describe(c)}`);
  }
  return `${lines.join('\n')}\n`;
}

function describe(c: { type: string; payload: unknown }): string {
  const p = (c.payload ?? {}) as Record<string, unknown>;
  const name = p.model ?? p.name ?? '?';
  const version = p.version ?? p.to;
  const from = p.from !== undefined ? ` from v${String(p.from)}` : '';
  return `${c.type} ${String(name)}${version !== undefined && version !== null ? ` v${String(version)}` : ''}${from}`;
}

function table(rows: string[][]): string[] {
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
