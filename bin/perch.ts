#!/usr/bin/env node
// The `perch` binary: the composition of the runtime, the cloud agent and the fleet tool, kept
// out of runtime/ so the runtime never imports its plugins (docs/design.md house style 13).
// `perch serve [--config FILE]` starts the runtime (docs/protocol.md section 6).
import { parseArgs } from 'node:util';
import { ENV_OVERRIDES, loadConfig } from '../runtime/config/load.js';
import { PerchError, toPerchError } from '../runtime/base/errors.js';
import { createLogger } from '../runtime/base/log.js';
import { Runtime } from '../runtime/runtime.js';
import { RUNTIME_VERSION } from '../runtime/base/version.js';
import { modulesFor } from './modules.js';

/** `PERCH_CONFIG` and every variable of ENV_OVERRIDES, a few to a line. */
function envHelp(): string {
  const names = ['PERCH_CONFIG', ...ENV_OVERRIDES.map((e) => e.env)];
  const lines: string[] = [];
  let line = '';
  for (const n of names) {
    const next = line ? `${line}, ${n}` : `  ${n}`;
    if (next.length > 76 && line) {
      lines.push(`${line},`);
      line = `  ${n}`;
    } else {
      line = next;
    }
  }
  return [...lines, line].join('\n');
}

const HELP = `perch ${RUNTIME_VERSION}: edge inference runtime

Usage:
  perch serve [--config FILE]   serve the model repository over HTTP (OIP) and WebSocket
  perch status [--url URL] [--json]  the running device's status (perch status --help)
  perch fleet <command>         the fleet control plane over MQTT (perch fleet --help)
  perch --help | --version

With no config at all, perch serve serves the shipped models/ repository on
127.0.0.1:8080 with data in ./data. The config file is JSON (docs/config.md);
these environment variables override it (docs/config.md, "Environment variables"):
${envHelp()}

SIGTERM or SIGINT: stop accepting work, finish what is in flight, exit 0.
`;

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const config = loadConfig({ configPath: values.config });
  const log = createLogger(config.log.level);
  const runtime = new Runtime(config, { log, modules: modulesFor(config) });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing in-flight work');
    const timer = setTimeout(() => {
      log.error({ timeoutMs: config.server.shutdownTimeoutMs }, 'shutdown timed out; exiting');
      process.exit(1);
    }, config.server.shutdownTimeoutMs);
    timer.unref();
    runtime.stop().then(
      () => {
        log.info('stopped');
        log.flush();
        process.exitCode = 0;
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exitCode = 1;
      },
    ).finally(() => clearTimeout(timer));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await runtime.start();
  } catch (err) {
    // Start-up failed (e.g. the port is taken): release what did start, within a bound, and exit
    // at once. Session threads and timers would otherwise keep a process that serves nothing.
    const e = toPerchError(err);
    log.fatal({ code: e.code, err: e.message }, 'start-up failed');
    const bound = new Promise<void>((resolve) => setTimeout(resolve, 5_000).unref());
    await Promise.race([runtime.stop().catch(() => undefined), bound]);
    log.flush();
    process.stderr.write(`perch: ${e.code}: ${e.message}\n`);
    process.exit(1);
  }
  return -1; // keep running until a signal
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'status':
      return (await import('./status.js')).status(rest);
    case 'fleet':
      return (await import('../cloud-sync/fleet/cli/main.js')).main(rest);
    case '--version':
    case '-v':
      process.stdout.write(`${RUNTIME_VERSION}\n`);
      return 0;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`perch: unknown command '${command}'\n\n${HELP}`);
      return 2;
  }
}

/** node:util parseArgs' own errors (ERR_PARSE_ARGS_UNKNOWN_OPTION and the like). */
function isUsageError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

function argvCommand(): string {
  const c = process.argv[2];
  return c === 'serve' || c === 'status' || c === 'fleet' ? c : '';
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    // An unknown option, a missing value or a stray argument is the user's mistake, not Perch's:
    // docs/cli.md says a usage error exits 2 (it was PERCH_ERR_INTERNAL, exit 1).
    if (isUsageError(err)) {
      process.stderr.write(`perch: PERCH_ERR_INVALID_MESSAGE: ${err.message} (see perch ${argvCommand()} --help)\n`);
      process.exitCode = 2;
      return;
    }
    const code = err instanceof PerchError ? err.code : 'PERCH_ERR_INTERNAL';
    process.stderr.write(`perch: ${code}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
