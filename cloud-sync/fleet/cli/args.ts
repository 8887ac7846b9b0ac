// Validation of the values every command shares (device ids, model names, versions, sizes), so a
// bad one is a usage error before anything touches the broker or the store.
import { deviceIdSchema, modelNameSchema } from '../../protocol/schemas.js';
import { UsageError } from './options.js';

export function requireString(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${flag} is required`);
  return value;
}

export function deviceIdArg(value: string | undefined): string {
  const v = requireString(value, 'device');
  if (!deviceIdSchema.safeParse(v).success) throw new UsageError(`--device '${v}': letters, digits and _ . : - only (1-128 characters)`);
  return v;
}

export function modelNameArg(value: string | undefined, flag = 'model'): string {
  const v = requireString(value, flag);
  if (!modelNameSchema.safeParse(v).success) throw new UsageError(`--${flag} '${v}': letters, digits and _ . : - only (1-128 characters)`);
  return v;
}

export function positiveIntArg(value: string | undefined, flag: string, min = 1): number {
  const v = requireString(value, flag);
  if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) throw new UsageError(`--${flag} must be an integer >= ${min}, got '${v}'`);
  return Number(v);
}

export function optionalIntArg(value: string | undefined, flag: string, min = 1): number | undefined {
  return value === undefined ? undefined : positiveIntArg(value, flag, min);
}
