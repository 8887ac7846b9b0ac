// The runtime config: one strict schema with every default inside it (DESIGN house style 4).
// docs/config.md documents each key; test/config/docs.test.ts fails when the two disagree.
import { hostname } from 'node:os';
import { z } from 'zod';
import { storeConfigSchema } from '../store/config.js';
import { shippedModelsDir } from './paths.js';

const MiB = 1024 * 1024;

/** Device ids end up in MQTT topics: no '/', '+', '#' or spaces. */
export const deviceIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'letters, digits and _ . : - only (1-128 characters)');

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function defaultDeviceId(): string {
  const h = hostname().replace(/[^A-Za-z0-9_.:-]/g, '-');
  return deviceIdSchema.safeParse(h).success ? h : 'perch-device';
}

export const configSchema = z.strictObject({
  device: z
    .strictObject({
      id: deviceIdSchema.default(defaultDeviceId),
    })
    .prefault({}),
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      apiToken: z.string().min(8, 'use at least 8 characters').nullable().default(null),
      maxRequestBytes: z.number().int().min(1024).default(32 * MiB),
      maxFrameBytes: z.number().int().min(1024).default(32 * MiB),
      maxInflightPerConnection: z.number().int().min(1).default(256),
      maxBufferedBytesPerConnection: z.number().int().min(64 * 1024).default(8 * MiB),
      shutdownTimeoutMs: z.number().int().min(0).default(15000),
    })
    .prefault({}),
  models: z
    .strictObject({
      repository: z.string().min(1).default(shippedModelsDir),
    })
    .prefault({}),
  dataDir: z.string().min(1).default('data'),
  store: storeConfigSchema.prefault({}),
  log: z
    .strictObject({
      level: z.enum(LOG_LEVELS).default('info'),
    })
    .prefault({}),
});

export type PerchConfig = z.infer<typeof configSchema>;
/** What a config file may contain: every key optional. */
export type PerchConfigInput = z.input<typeof configSchema>;
