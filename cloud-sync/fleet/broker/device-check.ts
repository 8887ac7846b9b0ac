// "Has the fleet ever heard from this device?": a retained status or reported document on the
// broker, or a row in the fleet database (serve saw it). Pushing to a mistyped id would
// otherwise leave a retained desired document that no device ever reads.
import { PerchError } from '../../../runtime/base/errors.js';
import { openExistingFleetStore, type FleetStoreLocation } from '../store/open.js';
import type { DeviceDocs } from './desired.js';

export async function assertKnownDevice(deviceId: string, docs: DeviceDocs, where: FleetStoreLocation, force: boolean): Promise<void> {
  if (force || docs.status || docs.reported) return;
  const db = await openExistingFleetStore(where);
  if (db) {
    try {
      if (await db.device(deviceId)) return;
    } finally {
      await db.close();
    }
  }
  throw new PerchError(
    'PERCH_ERR_DEVICE_UNKNOWN',
    `device '${deviceId}' has never published its status or reported state (pass --force to publish anyway)`,
  );
}
