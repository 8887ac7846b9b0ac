// The device ids a command's --device/--select/--all name (targets.ts), with --select and --all
// resolved against the devices the fleet store knows (recorded by serve as they report).
import { openExistingFleetStore, type FleetStoreLocation } from '../store/open.js';
import { parseTargets, resolveTargets, type KnownDevice } from './targets.js';

export async function targetDeviceIds(values: { device?: string[] | undefined; select?: string | undefined; all?: boolean | undefined }, where: FleetStoreLocation): Promise<string[]> {
  const targets = parseTargets(values);
  if (targets.kind === 'devices') return targets.ids;
  let known: KnownDevice[] = [];
  const db = await openExistingFleetStore(where);
  if (db) {
    try {
      known = await db.devices();
    } finally {
      await db.close();
    }
  }
  return resolveTargets(targets, known);
}
