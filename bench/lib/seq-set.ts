// The seqs of one device seen so far, in little memory: everything up to `through` (a device's
// seqs start at 1 and mostly arrive in order), and a set of those seen above it. Used by the raw
// consumer of bench/fleet-scale.ts to count distinct (device, seq) events.
export class SeqSet {
  private through = 0;
  private above = new Set<number>();

  /** true when `seq` was not seen before. */
  add(seq: number): boolean {
    if (seq <= this.through || this.above.has(seq)) return false;
    this.above.add(seq);
    while (this.above.delete(this.through + 1)) this.through++;
    return true;
  }
}
