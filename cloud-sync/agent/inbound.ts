// Every message the device receives goes through here: size limit, topic, JSON, schema. A bad
// payload is logged (at most a line per kind and reason every LOG_LIMIT_INTERVAL_MS, with the
// count of the others: a broker sending thousands a second filled the log and the disk; docs/cloud-sync.md
// "Bad payloads"), counted (stats.ignored, every one) and dropped; nothing thrown from here could reach
// mqtt.js's message loop, so the agent keeps working whatever the broker delivers. A refused
// desired document is also handed on, in bounded words, to be said in state/reported.
import { PerchError } from '../../runtime/base/errors.js';
import type { Logger } from '../../runtime/base/log.js';
import { sinceLastLine, type LogLimiter } from '../../runtime/base/log-limit.js';
import {
  commandSchema, desiredSchema, eventsAckSchema, parsePayload, parseTopic, type CommandMessage, type DesiredState, type EventsAck, type IgnoredDesired,
  type ParseResult,
} from '../protocol/index.js';
import { refusedDesired } from './refused-desired.js';
import type { AgentStats } from './stats.js';

export interface InboundHandlers {
  desired(doc: DesiredState): void;
  /** A desired document refused unread (oversized, not JSON, breaks the schema): its bounded note. */
  desiredRefused(note: IgnoredDesired): void;
  command(cmd: CommandMessage): void;
  /** False when no download of that model version is in progress (or the index is out of range). */
  chunk(name: string, version: number, index: number, payload: Buffer): boolean;
  /** The fleet stored these event seqs. */
  eventsAck(ack: EventsAck): void;
}

export interface InboundOptions {
  topicPrefix: string;
  deviceId: string;
  maxPayloadBytes: number;
  log: Logger;
  /** The agent's: lines of refused messages, a few per interval whatever comes. */
  limiter: LogLimiter;
  stats: AgentStats;
}

export function createInbound(opts: InboundOptions, handlers: InboundHandlers): (topic: string, payload: Buffer) => void {
  const { log, limiter, stats } = opts;
  /** `kind`: the topic's kind, one of a few (the topic itself is the peer's words: never a key). */
  const ignore = (kind: string, topic: string, reason: keyof AgentStats['ignored'], message: string): void => {
    stats.ignored[reason]++;
    limiter.line(`ignored ${kind} ${reason}`, (n) =>
      log.warn({ code: 'PERCH_ERR_MQTT_PAYLOAD_INVALID', topic, reason, err: message, ...sinceLastLine(n) }, 'MQTT message ignored'),
    );
  };
  const parsed = <T>(kind: string, topic: string, r: ParseResult<T>): T | undefined => {
    if (r.ok) return r.value;
    ignore(kind, topic, r.reason, r.error.message);
    return undefined;
  };

  const refuseDesired = (topic: string, payload: Buffer, r: Exclude<ParseResult<unknown>, { ok: true }>): void => {
    const note = refusedDesired(payload, r, opts.maxPayloadBytes);
    stats.ignored[r.reason]++;
    // The note's bounded words, not the parser's: a schema message names the document's own keys.
    limiter.line(`refused desired ${r.reason}`, (n) =>
      log.warn({ code: note.code, topic, reason: r.reason, version: note.version, err: note.reason, ...sinceLastLine(n) }, 'desired state refused'),
    );
    handlers.desiredRefused(note);
  };

  return (topic, payload) => {
    try {
      const t = parseTopic(opts.topicPrefix, topic);
      if (payload.byteLength > opts.maxPayloadBytes) {
        const message = `payload of ${payload.byteLength} bytes is over cloud.maxPayloadBytes (${opts.maxPayloadBytes})`;
        if (t?.kind === 'desired' && t.deviceId === opts.deviceId) {
          refuseDesired(topic, payload, { ok: false, reason: 'oversized', error: new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', message) });
        } else {
          ignore(t?.kind ?? 'other', topic, 'oversized', message);
        }
        return;
      }
      if (!t || t.deviceId !== opts.deviceId) {
        ignore('other', topic, 'unknownTopic', 'not a topic of this device');
        return;
      }
      switch (t.kind) {
        case 'desired': {
          // An empty retained message clears the desired state at the broker: nothing to apply.
          if (payload.byteLength === 0) return;
          // A key twice (a config or model.json setting given two values) is refused, as in files.
          const r = parsePayload(desiredSchema, payload, opts.maxPayloadBytes, true);
          if (r.ok) handlers.desired(r.value);
          else refuseDesired(topic, payload, r);
          return;
        }
        case 'commands': {
          const cmd = parsed(t.kind, topic, parsePayload(commandSchema, payload, opts.maxPayloadBytes));
          if (cmd) handlers.command(cmd);
          return;
        }
        case 'eventsAck': {
          const ack = parsed(t.kind, topic, parsePayload(eventsAckSchema, payload, opts.maxPayloadBytes));
          if (ack) handlers.eventsAck(ack);
          return;
        }
        case 'chunk': {
          if (!handlers.chunk(t.name ?? '', t.version ?? 0, t.index ?? -1, payload)) {
            ignore(t.kind, topic, 'unknownChunk', 'no download of this model version is in progress, or the index is out of range');
          }
          return;
        }
        default:
          ignore(t.kind, topic, 'unknownTopic', `the device does not take '${t.kind}' messages`);
      }
    } catch (err) {
      // A handler bug must not take the connection down with it.
      log.error({ err, topic }, 'MQTT message handler failed');
    }
  };
}
