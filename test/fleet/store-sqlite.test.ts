// The fleet store suite (store-suite.ts) against the embedded SQLite store, each test in a
// fresh folder, opened twice as two serve processes on one host do.
import { after, describe } from 'node:test';
import { openFleetStore } from '../../cloud-sync/fleet/store/open.js';
import { TempDirs } from './harness.js';
import { fleetStoreSuite } from './store-suite.js';

describe('fleet store: SQLite', () => {
  const temp = new TempDirs();
  after(() => temp.cleanup());
  fleetStoreSuite({
    fresh: async () => {
      const store = temp.make();
      return { open: () => openFleetStore({ store }) };
    },
  });
});
