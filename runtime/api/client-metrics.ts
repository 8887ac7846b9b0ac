// Metrics of the client budget (api/client-budget.ts) and the intake (api/intake.ts), docs/reliability.md.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClientBudget } from './client-budget.js';
import type { Intake } from './intake.js';

export function registerClientMetrics(registry: Registry, budget: ClientBudget, intake: Intake): void {
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
  new Gauge({
    name: 'perch_intake_parked_connections', help: 'Connections not read now because the event loop lags or their last request was refused for load.', registers: [registry],
    collect() {
      this.set(intake.parkedCount);
    },
  });
  new Counter({
    name: 'perch_intake_parks_total', help: 'Times a connection that brought inference work was parked (not read for a while), since start.', registers: [registry],
    collect() {
      this.reset();
      this.inc(intake.parkedTotal);
    },
  });
}
