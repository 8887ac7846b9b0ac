import { join } from 'node:path';
import { packageRoot } from '../base/package-root.js';

/** The model repository shipped with Perch, served when no repository is configured. */
export function shippedModelsDir(): string {
  return join(packageRoot(), 'models');
}
