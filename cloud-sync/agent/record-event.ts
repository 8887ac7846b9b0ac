// The agent's own events (model updates, rollbacks, commands) go through the same outbox as every
// other event, so they reach the cloud at-least-once, also after a reboot. The bus `event` topic
// is told too: the uploader wakes on it, WebSocket subscribers see it.
import { toPerchError } from '../../runtime/base/errors.js';
import type { RuntimePort } from '../../runtime/port/runtime-port.js';

/** Never throws: a store that cannot take the event is logged, the agent goes on. */
export function recordEvent(port: RuntimePort, type: string, payload: unknown): void {
  port.outbox.append(type, payload).then(
    (r) => port.bus.emit('event', { eventId: r.eventId, seq: r.seq, type, payload }),
    (err: unknown) => {
      const e = toPerchError(err);
      port.log.warn({ type, code: e.code, err: e.message }, 'cloud agent event not recorded');
    },
  );
}
