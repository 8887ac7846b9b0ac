// The WebSocket `status` answer (docs/protocol.md section 4, docs/api.md `status`): every model
// version and whether it serves, queue depths, live sequences, the outbox and connectivity.
import type { ModelInstance } from './batching/model-instance.js';
import type { ModelRegistry } from './models/registry.js';
import type { SequenceStats } from './sequences/live-sequences.js';
import type { OutboxStats } from './store/outbox.js';

export interface StatusParts {
  registry: ModelRegistry<ModelInstance>;
  sequences: () => SequenceStats[];
  outbox: () => OutboxStats;
  connectivity: () => string;
}

export function runtimeStatus(p: StatusParts): Record<string, unknown> {
  const models = p.registry.status().flatMap<{ name: string; version: number | null; ready: boolean; loadsOnFirstUse?: true }>((m) =>
    m.versions.length
      ? m.versions.map((v) => ({ name: m.name, version: v.version, ready: v.state === 'ready' }))
      // A model that loads on first use is available, as /v2/health/ready counts it.
      : [m.loadsOnFirstUse ? { name: m.name, version: null, ready: true, loadsOnFirstUse: true } : { name: m.name, version: null, ready: false }],
  );
  const queue: Record<string, number> = {};
  for (const i of p.registry.instances()) queue[i.name] = (queue[i.name] ?? 0) + i.batcher.depth;
  const { count, bytes, oldestAgeMs, sent } = p.outbox();
  const sequences = Object.fromEntries(p.sequences().map((s) => [s.model, s.active]));
  // count = unsent + awaitingAck (docs/api.md `status`).
  const outbox = { count, bytes, oldestAgeMs, unsent: count - sent, awaitingAck: sent };
  return { models, queue, sequences, outbox, connectivity: p.connectivity() };
}
