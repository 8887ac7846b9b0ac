// `perch fleet <command>`: the control-plane tool (docs/protocol.md section 6). A thin dispatcher: each
// command lives in its own file. Exit codes: 0 ok, 1 a PERCH_ERR_* failure (printed as
// `perch fleet: CODE: message` on stderr), 2 bad usage; serve and events --follow run until a signal.
import { PerchError } from '../../../runtime/base/errors.js';
import { configCommand, CONFIG_HELP } from '../commands/config.js';
import { devicesCommand, DEVICES_HELP } from '../commands/devices.js';
import { eventsCommand, EVENTS_HELP } from '../commands/events.js';
import { keygen, KEYGEN_HELP } from '../commands/keygen.js';
import { UsageError } from './options.js';
import { visibleOutput } from './visible.js';
import { pushCommand, PUSH_HELP } from '../commands/push.js';
import { removeCommand, REMOVE_HELP } from '../commands/remove.js';
import { rolloutCommand, ROLLOUT_HELP } from '../commands/rollout.js';
import { serveCommand, SERVE_HELP } from '../commands/serve.js';
import { signCommand, SIGN_HELP } from '../commands/sign.js';
import { simulateCommand, SIMULATE_HELP } from '../commands/simulate.js';

export const FLEET_HELP = `perch fleet: the control plane of a Perch fleet over MQTT (docs/fleet.md)

Usage: perch fleet <command> [options]   (perch fleet <command> --help for each)
  keygen   --out DIR                          Ed25519 signing key pair (PEM)
  sign     --sign-key K --name N --version V --file F   print a signed ModelSpec
  push     --device ID --model N --version V --file F [--sign-key K] [--wait]   store + publish desired state
  remove   --device ID --model N                   publish desired state with the model null (removed)
  config   --device ID --set k=v / --unset k ...   publish live config in the desired state
  rollout  start|status|pause|resume|abort|list   staged, health-gated rollouts (driven by serve)
  serve                                       answer chunk requests, store events and device state, drive rollouts
  devices                                     table of devices: online, models, versions, backlog
  events   --device ID [--since SEQ] [--follow]   stored events, as JSON lines
  simulate --devices N [--broker URL]          N simulated devices in this process (scale tests)

Broker: --url/PERCH_FLEET_MQTT_URL, --ca/--cert/--key, --username/--password,
--prefix (default perch/v1), --store DIR (default ./fleet), --timeout MS (default 5000).
`;

const HELPS: Record<string, string> = {
  keygen: KEYGEN_HELP, sign: SIGN_HELP, push: PUSH_HELP, remove: REMOVE_HELP, config: CONFIG_HELP,
  serve: SERVE_HELP, devices: DEVICES_HELP, events: EVENTS_HELP, rollout: ROLLOUT_HELP, simulate: SIMULATE_HELP,
};

/** Runs a command; returns the exit code, or -1 for a command that keeps running (serve). */
export async function run(argv: string[], stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [command, ...rest] = argv;
  // Device text reaches the terminal through every command (visible.ts). Not serve's stdout:
  // pino's JSON log lines at fleet rate, where JSON escapes the C0 controls and the logger the
  // rest (runtime/base/log.ts).
  const out = command === 'serve' ? stdout : visibleOutput(stdout);
  const err = visibleOutput(stderr);
  try {
    switch (command) {
      case 'keygen':
        return keygen(rest, out);
      case 'sign':
        return await signCommand(rest, out);
      case 'push':
        return await pushCommand(rest, out, err);
      case 'remove':
        return await removeCommand(rest, out);
      case 'config':
        return await configCommand(rest, out);
      case 'serve':
        return await serveCommand(rest, out);
      case 'rollout':
        return await rolloutCommand(rest, out);
      case 'devices':
        return await devicesCommand(rest, out, err);
      case 'events':
        return await eventsCommand(rest, out);
      case 'simulate':
        return await simulateCommand(rest, out);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out.write(FLEET_HELP);
        return 0;
      default:
        err.write(`perch fleet: unknown command '${command}'\n\n${FLEET_HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError || isParseArgsError(e)) {
      err.write(`perch fleet ${command}: ${(e as Error).message}\n\n${HELPS[command ?? ''] ?? FLEET_HELP}`);
      return 2;
    }
    if (e instanceof PerchError) {
      err.write(`perch fleet: ${e.code}: ${e.message}\n`);
      return 1;
    }
    const fsCode = (e as NodeJS.ErrnoException).code;
    if (typeof fsCode === 'string' && /^E[A-Z]+$/.test(fsCode)) {
      err.write(`perch fleet: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}

function isParseArgsError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** Entry from `perch fleet ...` (bin/perch.ts): -1 keeps the process running. */
export async function main(argv: string[]): Promise<number> {
  return run(argv);
}
