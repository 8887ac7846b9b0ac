// Metrics of the client budget (api/client-budget.ts, docs/reliability.md).
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClientBudget } from './client-budget.js';

export function registerClientMetrics(registry: Registry, budget: ClientBudget): void {
  new Gauge({
    name: 'perch_client_bytes', help: 'Bytes held for clients now: bodies being read, frames being handled, answers not yet written.', registers: [registry],
    collect() {
      this.set(budget.heldBytes);
    },
  });
  new Gauge({
    name: 'perch_client_bytes_limit', help: 'The client budget (server.maxClientBytes).', registers: [registry],
    collect() {
      this.set(budget.limit);
    },
  });
  new Counter({
    name: 'perch_client_refusals_total', help: 'Requests and messages refused with PERCH_ERR_OVERLOADED because the client budget was spent.', registers: [registry],
    collect() {
      this.reset();
      this.inc(budget.refusedCount);
    },
  });
}
