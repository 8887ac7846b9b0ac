// Metrics of the decoded-pixel budget (pixel-budget.ts; docs/models.md, "Pipelines").
import { Counter, Gauge, type Registry } from 'prom-client';
import type { PixelBudget } from './pixel-budget.js';

export function registerPixelMetrics(registry: Registry, budget: PixelBudget): void {
  new Gauge({
    name: 'perch_pipeline_pixels', help: 'Decoded pixels held now by image pipelines (taken from the header before decoding, given back with the answer).', registers: [registry],
    collect() {
      this.set(budget.heldPixels);
    },
  });
  new Gauge({
    name: 'perch_pipeline_pixels_limit', help: 'Decoded pixels all image pipelines may hold at once (models.maxPixelsInFlight).', registers: [registry],
    collect() {
      this.set(budget.limit);
    },
  });
  new Gauge({
    name: 'perch_pipeline_pixels_waiting', help: 'Pixels of the images waiting for room in the decoded-pixel budget.', registers: [registry],
    collect() {
      this.set(budget.waitingPixels);
    },
  });
  new Gauge({
    name: 'perch_pipeline_images_waiting', help: 'Images waiting for room in the decoded-pixel budget.', registers: [registry],
    collect() {
      this.set(budget.waitingCount);
    },
  });
  new Counter({
    name: 'perch_pipeline_pixel_refusals_total', help: 'Images refused with PERCH_ERR_QUEUE_FULL because models.maxImagesWaiting already waited, since start.', registers: [registry],
    collect() {
      this.reset();
      this.inc(budget.refusedCount);
    },
  });
}
