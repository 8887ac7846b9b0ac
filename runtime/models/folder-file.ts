// The files a pipeline step reads (ctc.greedy `keys`, classify.topk `labels`) are files of the
// model's own folder (docs/models.md, "Pipelines"). They were joined to the folder as written, so
// `"labels": "../../../../etc/passwd"` (or a labels.txt that is a symlink out of the folder)
// served /etc/passwd line by line to API clients as class labels. A name with a path in it is
// refused by the schema (pipeline-config.ts); this refuses what resolves outside the folder, at
// load (pipeline-executor.ts) and again where a processing thread reads it.
import { realpathSync } from 'node:fs';
import { join, sep } from 'node:path';
import { PerchError } from '../base/errors.js';

/** A file name, not a path: no separator, not '.' or '..'. */
export function isPlainFileName(s: string): boolean {
  return s.length > 0 && !/[\\/\0]/.test(s) && s !== '.' && s !== '..';
}

/** The real path of `file` in the model folder `dir`; PERCH_ERR_MODEL_CONFIG_INVALID when it is missing or outside it. */
export function folderFile(dir: string, file: string): string {
  let real: string;
  let realDir: string;
  try {
    realDir = realpathSync(dir);
    real = realpathSync(join(dir, file));
  } catch (err) {
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `'${file}' cannot be read in the model folder: ${(err as Error).message}`, { cause: err });
  }
  if (!isPlainFileName(file) || !real.startsWith(realDir + sep)) {
    throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `'${file}' is not a file of the model folder (a link or path out of it)`);
  }
  return real;
}
