// "Has the fleet ever heard from this device?": a retained status or reported document on the
// broker, or a row in the fleet database (serve saw it). Pushing to a mistyped id would
// otherwise leave a retained desired document that no device ever reads.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PerchError } from '../../../runtime/base/errors.js';
import { DB_FILE, FleetDatabase } from '../store/database.js';
import type { DeviceDocs } from './desired.js';

export function assertKnownDevice(deviceId: string, docs: DeviceDocs, store: string, force: boolean): void {
  if (force || docs.status || docs.reported) return;
  const file = join(store, DB_FILE);
  if (existsSync(file)) {
    const db = new FleetDatabase(file);
    try {
      if (db.device(deviceId)) return;
    } finally {
      db.close();
    }
  }
  throw new PerchError(
    'PERCH_ERR_DEVICE_UNKNOWN',
    `device '${deviceId}' has never published its status or reported state (pass --force to publish anyway)`,
  );
}
