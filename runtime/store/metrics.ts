// Store metrics (docs/protocol.md section 6), read from the stores' running totals at scrape time, so the
// stores know nothing about Prometheus. Always on a passed Registry, never prom-client's global
// one: tests run several runtimes in one process.
import { Counter, Gauge, type Registry } from 'prom-client';
import { DEFAULT_RULE } from './outbox-overflow.js';
import type { Outbox } from './outbox.js';
import type { ResultCache } from './result-cache.js';

export interface StoreMetricParts {
  outbox?: Outbox;
  cache?: ResultCache;
}

const DROP_REASONS = ['ttl', 'overflow'] as const;

export function registerStoreMetrics(registry: Registry, parts: StoreMetricParts): void {
  const registers = [registry];
  const { outbox, cache } = parts;
  if (outbox) {
    new Gauge({
      name: 'perch_outbox_events', help: 'Events in the outbox, waiting for upload (in flight included).', registers,
      collect() {
        this.set(outbox.stats().count);
      },
    });
    // The two states of a stored event (docs/cloud-sync.md "Delivery guarantee"): not sent yet,
    // or sent and awaiting the fleet's ack. They add up to perch_outbox_events.
    new Gauge({
      name: 'perch_outbox_unsent_events', help: 'Events in the outbox not sent yet (or sent again after no ack came).', registers,
      collect() {
        const s = outbox.stats();
        this.set(s.count - s.sent);
      },
    });
    new Gauge({
      name: 'perch_outbox_awaiting_ack_events', help: 'Events in the outbox sent and awaiting the fleet\'s ack (kept until it comes).', registers,
      collect() {
        this.set(outbox.stats().sent);
      },
    });
    new Gauge({
      name: 'perch_outbox_bytes', help: 'Bytes of the events in the outbox (type + payload JSON).', registers,
      collect() {
        this.set(outbox.stats().bytes);
      },
    });
    new Gauge({
      name: 'perch_outbox_oldest_age_seconds', help: 'Age of the oldest event in the outbox; 0 when empty.', registers,
      collect() {
        this.set(outbox.stats().oldestAgeMs / 1000);
      },
    });
    // Counters mirrored from the outbox's own totals (they only rise while it is open). `type` is
    // the store.outbox.overflowByType key that matched, "*" for the default (outbox-overflow.ts):
    // one series per configured key at most, whatever types clients send. The "*" series are
    // always there, so a query sees 0 rather than nothing before the first drop.
    new Counter({
      name: 'perch_outbox_dropped_total', help: 'Events dropped by retention before upload, by reason (ttl, overflow) and type (as store.outbox.overflowByType names it, * for the default).',
      labelNames: ['reason', 'type'], registers,
      collect() {
        const { byType } = outbox.stats();
        this.reset();
        for (const reason of DROP_REASONS) this.inc({ reason, type: DEFAULT_RULE }, 0);
        for (const [type, c] of Object.entries(byType)) {
          for (const reason of DROP_REASONS) if (c[reason] > 0) this.inc({ reason, type }, c[reason]);
        }
      },
    });
    new Counter({
      name: 'perch_outbox_refused_total', help: 'Events refused with PERCH_ERR_STORE_FULL because the outbox byte budget was spent, by type (as store.outbox.overflowByType names it, * for the default).',
      labelNames: ['type'], registers,
      collect() {
        const { byType } = outbox.stats();
        this.reset();
        this.inc({ type: DEFAULT_RULE }, 0);
        for (const [type, c] of Object.entries(byType)) if (c.refused > 0) this.inc({ type }, c.refused);
      },
    });
  }
  if (cache) {
    const labelNames = ['model', 'version'] as const;
    const perModel = () => cache.stats().byModel;
    const mirror = (name: string, help: string, field: 'hits' | 'misses' | 'evictions') =>
      new Counter({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          for (const m of perModel()) this.inc({ model: m.model, version: String(m.version) }, m[field]);
        },
      });
    mirror('perch_cache_hits_total', 'Requests answered from the result cache.', 'hits');
    mirror('perch_cache_misses_total', 'Cache lookups that found no live entry.', 'misses');
    mirror('perch_cache_evictions_total', 'Cache entries removed by the byte budget (least recently used first).', 'evictions');
    const gauge = (name: string, help: string, field: 'bytes' | 'entries') =>
      new Gauge({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          for (const m of perModel()) this.set({ model: m.model, version: String(m.version) }, m[field]);
        },
      });
    gauge('perch_cache_bytes', 'Bytes of serialized outputs in the result cache.', 'bytes');
    gauge('perch_cache_entries', 'Entries in the result cache.', 'entries');
  }
}
