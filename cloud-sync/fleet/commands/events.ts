// `perch fleet events --device ID [--since SEQ] [--follow]`: the events serve stored, as JSON
// lines in seq order. --follow polls the fleet database (every --poll-ms): it shows exactly
// what is durable and deduplicated, and works while serve runs in another process.
import { parseArgs } from 'node:util';
import { systemClock, type Clock } from '../../../runtime/base/clock.js';
import { PerchError } from '../../../runtime/base/errors.js';
import { deviceIdArg, optionalIntArg } from '../cli/args.js';
import type { FleetStore } from '../store/fleet-store.js';
import { describeFleetStore, openExistingFleetStore } from '../store/open.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions } from '../cli/options.js';

export const EVENTS_HELP = `perch fleet events --device ID [--since SEQ] [--follow] [--poll-ms MS]

Prints the device's events stored by 'perch fleet serve' (in <store>/fleet.db), one JSON line
each ({"deviceId","seq","id","ts","type","payload","receivedAt"}), in seq order, after SEQ
(default 0: all). --follow keeps printing new ones by polling the database every --poll-ms
(default 500) until SIGINT/SIGTERM. Needs only --store (no broker).

${COMMON_HELP}`;

export async function eventsCommand(args: string[], out: NodeJS.WritableStream, signal?: AbortSignal, clock: Clock = systemClock): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, device: { type: 'string' }, since: { type: 'string' }, follow: { type: 'boolean' }, 'poll-ms': { type: 'string' } },
  });
  if (values.help) {
    out.write(EVENTS_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const deviceId = deviceIdArg(values.device);
  let after = optionalIntArg(values.since, 'since', 0) ?? 0;
  const pollMs = optionalIntArg(values['poll-ms'], 'poll-ms') ?? 500;
  const file = describeFleetStore(opts);
  const stop = signal ?? stopSignal();

  let db: FleetStore | undefined;
  try {
    for (;;) {
      db ??= await openExistingFleetStore(opts);
      if (db) {
        for (;;) {
          const batch = await db.events(deviceId, after, 1000);
          for (const e of batch) out.write(`${JSON.stringify(e)}\n`);
          const last = batch[batch.length - 1];
          if (last) after = last.seq;
          if (batch.length < 1000) break;
        }
      }
      if (!values.follow) {
        if (!db || (after === 0 && !(await db.device(deviceId)))) {
          throw new PerchError('PERCH_ERR_DEVICE_UNKNOWN', `the fleet database ${file} has nothing from device '${deviceId}'`);
        }
        return 0;
      }
      if (stop.aborted) return 0;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          clock.clearTimeout(h);
          resolve();
        };
        const h = clock.setTimeout(() => {
          stop.removeEventListener('abort', onAbort);
          resolve();
        }, pollMs);
        stop.addEventListener('abort', onAbort, { once: true });
      });
      if (stop.aborted) return 0;
    }
  } finally {
    await db?.close();
  }
}

function stopSignal(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  return ac.signal;
}
