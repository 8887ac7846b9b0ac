// How a zod validation failure is told to a person: one line per bad path. Config files,
// model.json and request messages all report their issues this way.
import type { z } from 'zod';

/**
 * Every issue on its own line, as `path: message`; a path an environment variable set is
 * written `VARIABLE (path)`.
 */
export function formatIssues(error: z.ZodError, fromEnv: ReadonlyMap<string, string> = new Map()): string {
  const at = (path: PropertyKey[]): string => {
    const p = path.length ? path.map(String).join('.') : '(root)';
    const name = fromEnv.get(p);
    return name ? `${name} (${p})` : p;
  };
  return error.issues
    // An unknown key is named by its own full path, one line each, like every other bad key.
    .flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys.map((k) => `  - ${at([...i.path, k])}: unknown key`) : [`  - ${at(i.path)}: ${i.message}`]))
    .join('\n');
}
