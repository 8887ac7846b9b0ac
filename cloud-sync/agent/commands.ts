// P/devices/{id}/commands (docs/protocol.md section 5): reportState, rollback {model, version?}, flushCache. Each
// records an event with the command id and its outcome, so the fleet sees the answer in the
// device's event stream.
import { PerchError, toPerchError } from '../../runtime/base/errors.js';
import { sinceLastLine, type LogLimiter } from '../../runtime/base/log-limit.js';
import type { RuntimePort } from '../../runtime/port/runtime-port.js';
import { modelVersionSchema, type CommandMessage } from '../protocol/index.js';
import type { ModelUpdater } from './model-update/updater.js';
import type { ReportRequests } from './report-requests.js';
import type { AgentStats } from './stats.js';

/** What of the runtime the commands use. */
export type CommandsRuntime = Pick<RuntimePort, 'log' | 'events' | 'cache'>;

type CommandRun = (cmd: CommandMessage) => Promise<Record<string, unknown>>;

export function createCommands(
  runtime: CommandsRuntime,
  stats: AgentStats,
  updater: ModelUpdater,
  reports: ReportRequests,
  limiter: LogLimiter,
): (cmd: CommandMessage) => void {
  const runs: Record<CommandMessage['command'], CommandRun> = {
    // Publishes shared by the commands of one interval (report-requests.ts).
    reportState: async () => ({ ...(await reports.request()) }),
    rollback: async (cmd) => {
      const model = cmd.args?.model;
      if (typeof model !== 'string' || model === '') throw new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', 'rollback needs args.model (a model name)');
      // The version it rolls back from (docs/protocol.md section 5): a replayed or delayed
      // rollback meant for an earlier version must not roll back what serves now. Optional, so
      // fleets older than it still roll back; `perch fleet` always sends it.
      const from = cmd.args?.version;
      if (from !== undefined && !modelVersionSchema.safeParse(from).success) {
        throw new PerchError('PERCH_ERR_MQTT_PAYLOAD_INVALID', 'rollback args.version must be a model version (an integer of 1 or more)');
      }
      const now = await updater.rollback(model, `rolled back by command ${cmd.id}`, 'command', { commandId: cmd.id }, from as number | undefined);
      return { model, version: now.version, ...(from !== undefined ? { from } : {}) };
    },
    flushCache: async () => ({ deleted: runtime.cache.flush() }),
  };

  return (cmd) => {
    stats.commands++;
    // A line per command kind every interval, with the count (log-limit.ts): a peer with publish
    // rights sending valid commands by the thousand wrote a line each. Every command is an event.
    limiter.line(`command received ${cmd.command}`, (n) => runtime.log.info({ id: cmd.id, command: cmd.command, ...sinceLastLine(n) }, 'command received'));
    runs[cmd.command](cmd).then(
      (result) => runtime.events.record('command.succeeded', { id: cmd.id, command: cmd.command, ok: true, result }),
      (err: unknown) => {
        const e = toPerchError(err);
        // A line per command and code every interval (log-limit.ts); every failure is an event.
        limiter.line(`command failed ${cmd.command} ${e.code}`, (n) =>
          runtime.log.warn({ id: cmd.id, command: cmd.command, code: e.code, err: e.message, ...sinceLastLine(n) }, 'command failed'),
        );
        runtime.events.record('command.failed', { id: cmd.id, command: cmd.command, ok: false, error: e.toJSON() });
      },
    );
  };
}
