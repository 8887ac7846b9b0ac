// Reads the config once at start-up: JSON file (--config or PERCH_CONFIG), then PERCH_*
// environment overrides (they win), then validation that reports every bad path in one error,
// then a deep freeze. Relative paths in the file are relative to the file; in the environment,
// to the working directory.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { duplicateKeyProblem } from '../base/duplicate-keys.js';
import { PerchError } from '../base/errors.js';
import { formatIssues } from '../base/zod-issues.js';
import { configSchema, type PerchConfig } from './schema.js';

type Raw = Record<string, unknown>;

/**
 * docs/protocol.md section 6: environment variable -> config path and how to read its value.
 * `perch --help` lists these, and test/config/docs.test.ts checks the table of docs/config.md
 * against them.
 */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: string[]; kind: 'string' | 'number' | 'path' | 'boolean' }> = [
  { env: 'PERCH_HOST', path: ['server', 'host'], kind: 'string' },
  { env: 'PERCH_PORT', path: ['server', 'port'], kind: 'number' },
  { env: 'PERCH_API_TOKEN', path: ['server', 'apiToken'], kind: 'string' },
  { env: 'PERCH_CONTROL_PORT', path: ['server', 'control', 'port'], kind: 'number' },
  { env: 'PERCH_MODELS_DIR', path: ['models', 'repository'], kind: 'path' },
  { env: 'PERCH_DATA_DIR', path: ['dataDir'], kind: 'path' },
  { env: 'PERCH_LOG_LEVEL', path: ['log', 'level'], kind: 'string' },
  { env: 'PERCH_DEVICE_ID', path: ['device', 'id'], kind: 'string' },
  { env: 'PERCH_MQTT_URL', path: ['cloud', 'mqttUrl'], kind: 'string' },
  { env: 'PERCH_MQTT_CA', path: ['cloud', 'caFile'], kind: 'path' },
  { env: 'PERCH_MQTT_CERT', path: ['cloud', 'certFile'], kind: 'path' },
  { env: 'PERCH_MQTT_KEY', path: ['cloud', 'keyFile'], kind: 'path' },
  { env: 'PERCH_TRUSTED_KEYS', path: ['cloud', 'trustedKeysFile'], kind: 'path' },
  { env: 'PERCH_ALLOW_UNSIGNED_MODELS', path: ['cloud', 'allowUnsignedModels'], kind: 'boolean' },
];

/** Config keys that hold file-system paths, resolved against where they were written. */
const PATH_KEYS: string[][] = [['models', 'repository'], ['dataDir'], ['cloud', 'caFile'], ['cloud', 'certFile'], ['cloud', 'keyFile'], ['cloud', 'trustedKeysFile']];

export interface LoadOptions {
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function loadConfig(opts: LoadOptions = {}): Readonly<PerchConfig> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.configPath ?? env.PERCH_CONFIG;
  const raw: Raw = file ? readConfigFile(resolve(cwd, file)) : {};
  if (file) resolvePaths(raw, dirname(resolve(cwd, file)));
  const { fromEnv, bad } = applyEnv(raw, env, cwd);
  const source = file ? `config (file ${file}, PERCH_* environment)` : 'config (PERCH_* environment)';
  const result = configSchema.safeParse(raw);
  if (bad.length > 0 || !result.success) {
    const issues = [...bad, ...(result.success ? [] : [formatIssues(result.error, fromEnv)])];
    throw new PerchError('PERCH_ERR_CONFIG_INVALID', `${source} is invalid:\n${issues.join('\n')}`);
  }
  return deepFreeze(result.data);
}

/** Validates a raw config object (already merged) and freezes it. */
export function parseConfig(raw: unknown, source = 'config'): Readonly<PerchConfig> {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new PerchError('PERCH_ERR_CONFIG_INVALID', `${source} is invalid:\n${formatIssues(result.error)}`);
  }
  return deepFreeze(result.data);
}

function readConfigFile(path: string): Raw {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PerchError('PERCH_ERR_CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PerchError('PERCH_ERR_CONFIG_INVALID', `config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PerchError('PERCH_ERR_CONFIG_INVALID', `config file ${path} must hold a JSON object`);
  }
  // JSON.parse keeps the last of a key given twice, silently (duplicate-keys.ts).
  const twice = duplicateKeyProblem(text);
  if (twice !== null) throw new PerchError('PERCH_ERR_CONFIG_INVALID', `config file ${path} is invalid:\n  - ${twice}`);
  return parsed as Raw;
}

function resolvePaths(raw: Raw, base: string): void {
  for (const path of PATH_KEYS) {
    const parent = walk(raw, path.slice(0, -1), false);
    const key = path[path.length - 1] as string;
    const value = parent?.[key];
    if (typeof value === 'string' && !isAbsolute(value)) parent![key] = resolve(base, value);
  }
}

/**
 * Writes the PERCH_* variables over the file's values. Returns the variable behind each config
 * path it set, and what it could not read (a value that is no number / no boolean), so both are
 * reported by the variable's name, not only by a config path the user never wrote.
 */
function applyEnv(raw: Raw, env: NodeJS.ProcessEnv, cwd: string): { fromEnv: Map<string, string>; bad: string[] } {
  const fromEnv = new Map<string, string>();
  const bad: string[] = [];
  for (const { env: name, path, kind } of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    // Only numbers and booleans are echoed: other values may be secrets (tokens, URLs with passwords).
    if (kind === 'number' && !/^\d+$/.test(value)) {
      bad.push(`  - ${name} (${path.join('.')}): '${value}' is not a whole number`);
      continue;
    }
    if (kind === 'boolean' && value !== 'true' && value !== 'false') {
      bad.push(`  - ${name} (${path.join('.')}): '${value}' is neither true nor false`);
      continue;
    }
    const parent = walk(raw, path.slice(0, -1), true)!;
    const key = path[path.length - 1] as string;
    parent[key] = kind === 'number' ? Number(value) : kind === 'boolean' ? value === 'true' : kind === 'path' ? resolve(cwd, value) : value;
    fromEnv.set(path.join('.'), name);
  }
  return { fromEnv, bad };
}

function walk(raw: Raw, path: string[], create: boolean): Raw | undefined {
  let node: Raw = raw;
  for (const key of path) {
    const next = node[key];
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) node = next as Raw;
    else if (create) node = node[key] = {};
    else return undefined;
  }
  return node;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
