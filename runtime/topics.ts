// The one source of notifications for the WebSocket `subscribe` op and SSE /v1/events
// (api/topics.ts): bus facts for models, connectivity and events, samples for metrics.
import type { Bus } from './base/bus.js';
import type { Topic, TopicSource } from './api/topics.js';
import type { LiveMetrics } from './live-metrics.js';

export function topicSource(bus: Bus, metrics: LiveMetrics): TopicSource {
  return (topic: Topic, push: (data: unknown) => void) => {
    if (topic === 'models') return bus.on('model', push);
    if (topic === 'connectivity') return bus.on('connectivity', push);
    if (topic === 'metrics') return metrics.subscribe(push);
    return bus.on('event', push);
  };
}
