// Device labels (config `device.labels`, docs/config.md): a few short key/value strings the device
// reports with its status and reported state, so `perch fleet` can target devices by them
// (`--select site=kitchen,hw=pi4`, docs/fleet.md "Targeting devices"). Bounded so a label set
// stays a small part of every status message, and spelled so a selector can always name it:
// no `,` or `=` in keys or values.
import { z } from 'zod';

export const MAX_LABELS = 32;
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$/;
export const LABEL_VALUE_PATTERN = /^[A-Za-z0-9_.:\-/]{0,63}$/;

export const labelKeySchema = z.string().regex(LABEL_KEY_PATTERN, 'a label key: letters, digits and _ . - /, 1-63 characters, starting with a letter or digit');
export const labelValueSchema = z.string().regex(LABEL_VALUE_PATTERN, 'a label value: letters, digits and _ . : - /, at most 63 characters');

export const labelsSchema = z
  .record(labelKeySchema, labelValueSchema)
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);

export type Labels = Record<string, string>;
