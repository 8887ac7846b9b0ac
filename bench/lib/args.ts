// The benchmarks' command-line flags: `--name value` pairs, nothing more (no library for a
// handful of flags).

/** The value after `--name`, if the flag is given. */
export function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** A numeric flag; a value that is not a number is refused rather than run as NaN. */
export function numberFlag(name: string, dflt: number): number {
  const v = flag(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} takes a number, not '${v}'`);
  return n;
}
