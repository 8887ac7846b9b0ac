import { runStateStoreSuite } from './abstract/state-store-suite.js';
import { storeHarness } from './helpers/store-harness.js';

runStateStoreSuite('SQLite', async () => {
  const h = await storeHarness();
  return { state: h.store.state, reopen: async () => (await h.reopen()).state, destroy: () => h.destroy() };
});
