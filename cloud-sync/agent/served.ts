// The served version of each model as state/reported shows it: with a version policy serving
// several versions, the highest one (the one updates replace and rollback goes back from).
import type { ModelControl, ServedModel } from '../../runtime/port/runtime-port.js';

export function servedByName(models: Pick<ModelControl, 'served'>): Map<string, ServedModel> {
  const out = new Map<string, ServedModel>();
  for (const m of models.served()) {
    const seen = out.get(m.name);
    if (!seen || m.version > seen.version) out.set(m.name, m);
  }
  return out;
}
