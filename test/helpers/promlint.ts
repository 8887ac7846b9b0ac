// Checks a Prometheus text exposition (format 0.0.4) the way `promtool check metrics` does: its
// parser's rules (HELP/TYPE before the family's samples, each once, families not split, names,
// label syntax, values, histogram series) and its lint rules (client_golang's promlint: counters
// end in _total and nothing else does, HELP present, no camelCase, no type or abbreviated or
// non-base unit in the name, _count/_sum/_bucket and `le` reserved for histograms). promtool is
// a Go binary this machine has not got; this is the same list, written out.

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const UNIT_ABBREVIATIONS = ['s', 'ms', 'us', 'ns', 'sec', 'b', 'kb', 'mb', 'gb', 'tb', 'pb', 'm', 'h', 'd'];
const UNIT_PREFIXES = ['pico', 'nano', 'micro', 'milli', 'centi', 'deci', 'deca', 'hecto', 'kilo', 'kibi', 'mega', 'mebi', 'giga', 'gibi', 'tera', 'tebi', 'peta', 'pebi'];
const BASE_UNITS = ['amperes', 'bytes', 'celsius', 'grams', 'joules', 'kelvin', 'meters', 'metres', 'seconds', 'volts'];
const NON_BASE_TIME = ['minutes', 'hours', 'days', 'weeks'];

interface Family {
  name: string;
  type: string | null;
  help: string | null;
  samples: Array<{ name: string; labels: Map<string, string>; value: number }>;
}

/** Every problem found, one line each (`name: what`); empty when promtool would pass it. */
export function lintExposition(text: string): string[] {
  const problems: string[] = [];
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  let current: Family | null = null;

  const familyOf = (name: string, line: number): Family => {
    if (current?.name === name) return current;
    if (current) closed.add(current.name);
    if (closed.has(name)) problems.push(`${name}: line ${line}: the family appears again after other families (promtool: second HELP/TYPE or samples out of place)`);
    let f = families.get(name);
    if (!f) {
      f = { name, type: null, help: null, samples: [] };
      families.set(name, f);
    }
    current = f;
    return f;
  };

  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') problems.push('the exposition does not end with a newline');
  lines.forEach((raw, i) => {
    const n = i + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) return; // other comments are allowed
      const [, kind, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) problems.push(`${name}: line ${n}: not a valid metric name`);
      const f = familyOf(name, n);
      if (kind === 'HELP') {
        if (f.help !== null) problems.push(`${name}: line ${n}: second HELP line`);
        f.help = rest ?? '';
      } else {
        if (f.type !== null) problems.push(`${name}: line ${n}: second TYPE line`);
        if (f.samples.length > 0) problems.push(`${name}: line ${n}: TYPE after the family's samples`);
        if (!TYPES.has(rest ?? '')) problems.push(`${name}: line ${n}: unknown type '${rest}'`);
        f.type = rest ?? null;
      }
      return;
    }
    const s = parseSample(raw);
    if (typeof s === 'string') {
      problems.push(`line ${n}: ${s}: ${raw}`);
      return;
    }
    familyOf(familyName(s.name, families, current), n).samples.push(s);
  });

  for (const f of families.values()) problems.push(...lintFamily(f));
  return problems;
}

/** A histogram's `x_bucket`, `x_sum`, `x_count` samples belong to family `x` (summary likewise). */
function familyName(sample: string, families: Map<string, Family>, current: Family | null): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const base = sample.slice(0, -suffix.length);
    const t = families.get(base)?.type;
    if ((t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) && (current === null || current.name === base)) return base;
  }
  return sample;
}

function parseSample(line: string): { name: string; labels: Map<string, string>; value: number } | string {
  const m = /^([^\s{]+)(\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
  if (!m) return 'not a sample line';
  const name = m[1] as string;
  if (!METRIC_NAME.test(name)) return `invalid metric name '${name}'`;
  const labels = new Map<string, string>();
  if (m[3] !== undefined && m[3] !== '') {
    const body = m[3];
    const re = /\s*([^=\s]+)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/y;
    let at = 0;
    while (at < body.length) {
      re.lastIndex = at;
      const l = re.exec(body);
      if (!l) return `cannot parse labels '${body}'`;
      const label = l[1] as string;
      if (!LABEL_NAME.test(label) || label.startsWith('__')) return `invalid label name '${label}'`;
      if (labels.has(label)) return `label '${label}' twice`;
      labels.set(label, l[2] as string);
      at = re.lastIndex;
      if (l[3] === '' && at < body.length) return `cannot parse labels '${body}'`;
    }
  }
  const v = m[4] as string;
  const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : v === 'NaN' ? NaN : /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) ? Number(v) : undefined;
  if (value === undefined) return `invalid value '${v}'`;
  return { name, labels, value };
}

function lintFamily(f: Family): string[] {
  const p: string[] = [];
  const name = f.name;
  const lower = name.toLowerCase();
  if (f.type === null) p.push(`${name}: no TYPE line`);
  if (f.help === null || f.help.trim() === '') p.push(`${name}: no help text`);
  // promlint lintCounter
  const isCounter = f.type === 'counter';
  const total = name.endsWith('_total');
  if (isCounter && !total) p.push(`${name}: counter metrics should have "_total" suffix`);
  if (!isCounter && f.type !== 'untyped' && f.type !== null && total) p.push(`${name}: non-counter metrics should not have "_total" suffix`);
  // promlint lintHistogramSummaryReserved
  const histoOrSummary = f.type === 'histogram' || f.type === 'summary';
  for (const suffix of ['_count', '_sum', '_bucket']) {
    if (!histoOrSummary && name.endsWith(suffix)) p.push(`${name}: non-histogram and non-summary metrics should not have "${suffix}" suffix`);
  }
  // promlint lintMetricTypeInName
  for (const t of ['counter', 'gauge', 'histogram', 'summary']) {
    if (f.type !== 'untyped' && (lower.includes(`_${t}_`) || lower.endsWith(`_${t}`))) p.push(`${name}: metric name should not include type '${t}'`);
  }
  // promlint lintReservedChars, lintCamelCase
  if (name.includes(':')) p.push(`${name}: metric names should not contain ':'`);
  if (/[a-z][A-Z]/.test(name)) p.push(`${name}: metric names should be written in 'snake_case' not 'camelCase'`);
  // promlint lintUnitAbbreviations, lintMetricUnits
  for (const a of UNIT_ABBREVIATIONS) {
    if (lower.includes(`_${a}_`) || lower.endsWith(`_${a}`)) p.push(`${name}: metric names should not contain abbreviated units ('${a}')`);
  }
  for (const part of lower.split('_')) {
    for (const unit of BASE_UNITS) {
      if (UNIT_PREFIXES.some((pre) => part === pre + unit)) p.push(`${name}: use base unit "${unit}" instead of "${part}"`);
    }
    if (NON_BASE_TIME.includes(part)) p.push(`${name}: use base unit "seconds" instead of "${part}"`);
  }

  const seen = new Set<string>();
  for (const s of f.samples) {
    for (const label of s.labels.keys()) {
      if (/[a-z][A-Z]/.test(label)) p.push(`${name}: label names should be written in 'snake_case' not 'camelCase' ('${label}')`);
    }
    if (f.type === 'histogram' && s.name !== `${name}_bucket` && s.labels.has('le')) p.push(`${name}: histogram samples other than _bucket carry "le"`);
    if (f.type !== 'histogram' && s.labels.has('le')) p.push(`${name}: non-histogram metrics should not have "le" label`);
    if (f.type !== 'summary' && s.labels.has('quantile')) p.push(`${name}: non-summary metrics should not have "quantile" label`);
    if (!histoOrSummary && s.name !== name) p.push(`${name}: sample '${s.name}' does not belong to the family`);
    if (isCounter && s.value < 0) p.push(`${name}: counter value ${s.value} is negative`);
    const key = `${s.name}{${[...s.labels].sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seen.has(key)) p.push(`${name}: duplicate series ${key}`);
    seen.add(key);
  }
  if (f.type === 'histogram') p.push(...lintHistogramSeries(f));
  return p;
}

/** Each series: buckets rising to le="+Inf", and _count equal to the +Inf bucket. */
function lintHistogramSeries(f: Family): string[] {
  const p: string[] = [];
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const rest = [...s.labels].filter(([k]) => k !== 'le').sort().map(([k, v]) => `${k}=${v}`).join(',');
    const entry = series.get(rest) ?? { buckets: [] };
    series.set(rest, entry);
    if (s.name === `${f.name}_bucket`) {
      const le = s.labels.get('le');
      if (le === undefined) p.push(`${f.name}: a bucket without "le"`);
      else entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${f.name}_count`) entry.count = s.value;
    else if (s.name === `${f.name}_sum`) entry.sum = s.value;
  }
  for (const [labels, e] of series) {
    const at = `${f.name}{${labels}}`;
    if (!e.buckets.some(([le]) => le === Infinity)) p.push(`${at}: no le="+Inf" bucket`);
    const sorted = [...e.buckets].sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < sorted.length; i++) {
      if ((sorted[i] as [number, number])[1] < (sorted[i - 1] as [number, number])[1]) p.push(`${at}: bucket counts fall`);
    }
    if (e.count === undefined || e.sum === undefined) p.push(`${at}: _count or _sum missing`);
    const inf = sorted.find(([le]) => le === Infinity)?.[1];
    if (inf !== undefined && e.count !== undefined && inf !== e.count) p.push(`${at}: _count ${e.count} differs from the +Inf bucket ${inf}`);
  }
  return p;
}
