/**
 * The checker's own set of half-open ranges [start, end). Deliberately independent of protocol/ranges.ts:
 * the simulator must not trust the code it checks.
 */
export class Intervals {
  private readonly list: [number, number][] = [];

  get size(): number {
    return this.list.length;
  }

  /** Total length covered. */
  total(): number {
    let sum = 0;
    for (const [s, e] of this.list) sum += e - s;
    return sum;
  }

  /** How many values of [start, end) are already in the set. */
  overlap(start: number, end: number): number {
    let n = 0;
    for (let i = this.firstEndingAfter(start); i < this.list.length; i += 1) {
      const [s, e] = this.list[i]!;
      if (s >= end) break;
      n += Math.min(e, end) - Math.max(s, start);
    }
    return n;
  }

  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.firstEndingAfter(start);
    const r = this.list[i];
    return r !== undefined && r[0] <= start && r[1] >= end;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const i = this.firstEndingAfter(start - 1);
    // Merge every range that touches or overlaps [start, end).
    let s = start;
    let e = end;
    let j = i;
    while (j < this.list.length && this.list[j]![0] <= end) {
      s = Math.min(s, this.list[j]![0]);
      e = Math.max(e, this.list[j]![1]);
      j += 1;
    }
    this.list.splice(i, j - i, [s, e]);
  }

  /** End of the range that starts at 0 (0 when 0 is not held). */
  prefixEnd(): number {
    const first = this.list[0];
    return first && first[0] <= 0 ? first[1] : 0;
  }

  ranges(): [number, number][] {
    return this.list.map(([s, e]) => [s, e]);
  }

  /** Index of the first range whose end is > value. */
  private firstEndingAfter(value: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid]![1] <= value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
