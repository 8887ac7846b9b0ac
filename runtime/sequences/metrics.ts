import { Gauge, type Registry } from 'prom-client';
import type { SequenceStats } from './live-sequences.js';

/** perch_sequences_active and the memory their state holds (bounded by maxSequences x state size). */
export function registerSequenceMetrics(registry: Registry, stats: () => SequenceStats[]): void {
  new Gauge({
    name: 'perch_sequences_active', help: 'Live sequences (streams) of stateful models.', labelNames: ['model'], registers: [registry],
    collect() {
      this.reset();
      for (const s of stats()) this.set({ model: s.model }, s.active);
    },
  });
  new Gauge({
    name: 'perch_sequence_state_bytes', help: 'Bytes of state tensors kept for live sequences.', labelNames: ['model'], registers: [registry],
    collect() {
      this.reset();
      for (const s of stats()) this.set({ model: s.model }, s.stateBytes);
    },
  });
}
