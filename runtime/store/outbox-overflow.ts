// What the outbox does with an event that does not fit its byte budget (docs/store.md
// "Retention"), chosen per event type: `refuse` (the append fails with PERCH_ERR_STORE_FULL and
// nothing stored is touched) or `drop-oldest` (the oldest stored events whose own strategy is
// drop-oldest make room). A refuse-type event is never dropped to make room for anything, so an
// acknowledged refuse-type event stays until it is uploaded (or its TTL runs out).
//
// `overflowByType` names exact types ("telemetry") or type families ("telemetry.*": every type
// that starts with "telemetry."); an exact name wins over a family, a longer family over a
// shorter one, and `overflow` covers every other type. The key that matched (or "*" for the
// default) is also the `type` label of the drop and refusal counters, so those counters have at
// most one series per configured key, whatever types clients send.
export const OVERFLOW_STRATEGIES = ['refuse', 'drop-oldest'] as const;
export type OverflowStrategy = (typeof OVERFLOW_STRATEGIES)[number];

export interface OverflowConfig {
  /** Strategy of every type `overflowByType` does not name. */
  overflow: OverflowStrategy;
  /** Exact types or `prefix.*` families -> strategy. */
  overflowByType: Readonly<Record<string, OverflowStrategy>>;
}

/** The counter label of types the default strategy covers. */
export const DEFAULT_RULE = '*';

export interface OverflowRule {
  /** The `overflowByType` key that matched, or DEFAULT_RULE. */
  label: string;
  droppable: boolean;
}

/** Bound on remembered type -> rule answers (types come from clients; see resolve()). */
const MEMO_MAX = 4096;

export class OverflowPolicy {
  private readonly exact = new Map<string, OverflowRule>();
  /** Families as [prefix with its dot, rule], longest prefix first. */
  private readonly families: Array<[string, OverflowRule]> = [];
  private readonly fallback: OverflowRule;
  private readonly memo = new Map<string, OverflowRule>();
  /** True when no type can be dropped: the append path then needs no per-type bookkeeping. */
  readonly nothingDroppable: boolean;
  /** True when every type can be dropped (the strategy before there was a choice). */
  readonly everythingDroppable: boolean;

  constructor(config: OverflowConfig) {
    this.fallback = { label: DEFAULT_RULE, droppable: config.overflow === 'drop-oldest' };
    let anyDroppable = this.fallback.droppable;
    let allDroppable = this.fallback.droppable;
    for (const [key, strategy] of Object.entries(config.overflowByType)) {
      const rule = { label: key, droppable: strategy === 'drop-oldest' };
      anyDroppable ||= rule.droppable;
      allDroppable &&= rule.droppable;
      if (key.endsWith('.*')) this.families.push([key.slice(0, -1), rule]);
      else this.exact.set(key, rule);
    }
    this.families.sort((a, b) => b[0].length - a[0].length);
    this.nothingDroppable = !anyDroppable;
    this.everythingDroppable = allDroppable;
  }

  /** The rule of an event type. Memoized: the same few types are appended over and over. */
  resolve(type: string): OverflowRule {
    let rule = this.memo.get(type);
    if (rule !== undefined) return rule;
    rule = this.exact.get(type) ?? this.families.find(([prefix]) => type.startsWith(prefix))?.[1] ?? this.fallback;
    // A client sending ever new types would grow the memo without end: start over instead.
    if (this.memo.size >= MEMO_MAX) this.memo.clear();
    this.memo.set(type, rule);
    return rule;
  }

}
