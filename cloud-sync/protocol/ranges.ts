// Seqs as inclusive ranges, the form of `P/devices/{id}/events/ack` (schemas.ts eventsAckSchema):
// a batch of 100 consecutive seqs is one [from, to] pair, whatever order the seqs came in.

/** Sorted, merged `[from, to]` ranges of `seqs` (duplicates removed). */
export function toRanges(seqs: Iterable<number>): [number, number][] {
  const sorted = Float64Array.from(seqs).sort();
  const out: [number, number][] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], s);
    else out.push([s, s]);
  }
  return out;
}
