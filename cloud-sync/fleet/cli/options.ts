// Broker and store options shared by every `perch fleet` command: flags win over PERCH_FLEET_*
// environment variables, which win over the defaults.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { DEFAULT_PREFIX } from '../../protocol/topics.js';

export interface BrokerOptions {
  url: string;
  /** PEM contents, read from the files named by --ca/--cert/--key. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  username?: string;
  password?: string;
  /** Connect deadline (and the deadline for reading retained documents). */
  timeoutMs: number;
}

export interface FleetOptions {
  broker: BrokerOptions;
  prefix: string;
  /** Fleet store folder: models and the fleet database. */
  store: string;
  /** A PostgreSQL URL for the fleet database instead of <store>/fleet.db (--db, PERCH_FLEET_DB). */
  db?: string;
}

export const COMMON_OPTIONS = {
  url: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  prefix: { type: 'string' },
  store: { type: 'string' },
  db: { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const COMMON_HELP = `Broker and store (flag, else environment, else default):
  --url URL            PERCH_FLEET_MQTT_URL        mqtt://127.0.0.1:1883 (mqtts:// for TLS)
  --ca FILE            PERCH_FLEET_MQTT_CA         CA certificate (PEM) the broker's certificate chains to
  --cert FILE          PERCH_FLEET_MQTT_CERT       client certificate (PEM), for mutual TLS
  --key FILE           PERCH_FLEET_MQTT_KEY        client private key (PEM)
  --username NAME      PERCH_FLEET_MQTT_USERNAME
  --password SECRET    PERCH_FLEET_MQTT_PASSWORD
  --prefix P           PERCH_FLEET_PREFIX          ${DEFAULT_PREFIX}
  --store DIR          PERCH_FLEET_STORE           ./fleet
  --db URL             PERCH_FLEET_DB              <store>/fleet.db (SQLite); postgres://... shares
                                                   devices, events and rollouts among hosts
  --timeout MS         PERCH_FLEET_TIMEOUT_MS      5000 (broker connect and read deadline)
`;

type CommonValues = { [K in keyof typeof COMMON_OPTIONS]?: string | boolean | undefined };

function pick(flag: unknown, envName: string, env: NodeJS.ProcessEnv): string | undefined {
  if (typeof flag === 'string' && flag !== '') return flag;
  const v = env[envName];
  return v === undefined || v === '' ? undefined : v;
}

export function fleetOptions(values: CommonValues, env: NodeJS.ProcessEnv = process.env): FleetOptions {
  const file = (flag: unknown, envName: string): Buffer | undefined => {
    const path = pick(flag, envName, env);
    return path === undefined ? undefined : readFileSync(path);
  };
  const timeout = Number(pick(values.timeout, 'PERCH_FLEET_TIMEOUT_MS', env) ?? 5000);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError('--timeout must be a positive number of milliseconds');
  const broker: BrokerOptions = {
    url: pick(values.url, 'PERCH_FLEET_MQTT_URL', env) ?? 'mqtt://127.0.0.1:1883',
    timeoutMs: timeout,
  };
  const ca = file(values.ca, 'PERCH_FLEET_MQTT_CA');
  const cert = file(values.cert, 'PERCH_FLEET_MQTT_CERT');
  const key = file(values.key, 'PERCH_FLEET_MQTT_KEY');
  const username = pick(values.username, 'PERCH_FLEET_MQTT_USERNAME', env);
  const password = pick(values.password, 'PERCH_FLEET_MQTT_PASSWORD', env);
  if (ca) broker.ca = ca;
  if (cert) broker.cert = cert;
  if (key) broker.key = key;
  if (username !== undefined) broker.username = username;
  if (password !== undefined) broker.password = password;
  const prefix = (pick(values.prefix, 'PERCH_FLEET_PREFIX', env) ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  if (/[#+]/.test(prefix) || prefix === '') throw new UsageError('--prefix must be a topic prefix without wildcards');
  const db = pick(values.db, 'PERCH_FLEET_DB', env);
  if (db !== undefined && !/^postgres(ql)?:\/\//.test(db)) throw new UsageError('--db / PERCH_FLEET_DB must be a postgres:// URL (without it the fleet database is <store>/fleet.db)');
  return { broker, prefix, store: resolve(pick(values.store, 'PERCH_FLEET_STORE', env) ?? './fleet'), ...(db !== undefined ? { db } : {}) };
}

/** Bad command-line use: exit code 2, with the command's help. */
export class UsageError extends Error {
  override name = 'UsageError';
}
