/**
 * A set of half-open integer ranges [start, end), kept sorted and merged. Appends at the end (the common
 * case: data and packet numbers mostly arrive in order) cost O(1); other inserts O(ranges).
 */
export class RangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  get count(): number {
    return this.starts.length;
  }

  get isEmpty(): boolean {
    return this.starts.length === 0;
  }

  /** The lowest start, or undefined when empty. */
  get min(): number | undefined {
    return this.starts[0];
  }

  /** The highest end (exclusive), or undefined when empty. */
  get max(): number | undefined {
    return this.ends[this.ends.length - 1];
  }

  range(i: number): [number, number] {
    return [this.starts[i]!, this.ends[i]!];
  }

  *[Symbol.iterator](): IterableIterator<[number, number]> {
    for (let i = 0; i < this.starts.length; i += 1) yield [this.starts[i]!, this.ends[i]!];
  }

  /** Newest (highest) first. */
  *reversed(): IterableIterator<[number, number]> {
    for (let i = this.starts.length - 1; i >= 0; i -= 1) yield [this.starts[i]!, this.ends[i]!];
  }

  /** Index of the first range whose end is ≥ value (binary search). */
  private firstEndingAtOrAfter(value: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  has(value: number): boolean {
    const i = this.firstEndingAtOrAfter(value + 1);
    return i < this.starts.length && this.starts[i]! <= value;
  }

  /** Whether [start, end) is wholly inside the set. */
  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.firstEndingAtOrAfter(end);
    return i < this.starts.length && this.starts[i]! <= start;
  }

  /** The parts of [start, end) not in the set, in order. */
  gaps(start: number, end: number): [number, number][] {
    const out: [number, number][] = [];
    let at = start;
    for (let i = this.firstEndingAtOrAfter(start + 1); i < this.starts.length && at < end; i += 1) {
      const s = this.starts[i]!;
      if (s >= end) break;
      if (s > at) out.push([at, s]);
      at = Math.max(at, this.ends[i]!);
    }
    if (at < end) out.push([at, end]);
    return out;
  }

  /** Adds [start, end) and returns how many values were not in the set before. */
  add(start: number, end: number): number {
    if (end <= start) return 0;
    const n = this.starts.length;
    if (n === 0 || start > this.ends[n - 1]!) {
      this.starts.push(start);
      this.ends.push(end);
      return end - start;
    }
    if (start >= this.starts[n - 1]! && start <= this.ends[n - 1]!) {
      const added = Math.max(0, end - this.ends[n - 1]!);
      if (end > this.ends[n - 1]!) this.ends[n - 1] = end;
      return added;
    }
    // General case: merge every range that touches [start, end).
    const i = this.firstEndingAtOrAfter(start);
    let j = i;
    let covered = 0;
    let newStart = start;
    let newEnd = end;
    while (j < n && this.starts[j]! <= end) {
      covered += Math.min(this.ends[j]!, end) - Math.max(this.starts[j]!, start);
      newStart = Math.min(newStart, this.starts[j]!);
      newEnd = Math.max(newEnd, this.ends[j]!);
      j += 1;
    }
    this.starts.splice(i, j - i, newStart);
    this.ends.splice(i, j - i, newEnd);
    return end - start - Math.max(0, covered);
  }

  /** Removes [start, end). */
  remove(start: number, end: number): void {
    if (end <= start || this.starts.length === 0) return;
    const i = this.firstEndingAtOrAfter(start + 1);
    let j = i;
    const keepStarts: number[] = [];
    const keepEnds: number[] = [];
    while (j < this.starts.length && this.starts[j]! < end) {
      if (this.starts[j]! < start) {
        keepStarts.push(this.starts[j]!);
        keepEnds.push(start);
      }
      if (this.ends[j]! > end) {
        keepStarts.push(end);
        keepEnds.push(this.ends[j]!);
      }
      j += 1;
    }
    this.starts.splice(i, j - i, ...keepStarts);
    this.ends.splice(i, j - i, ...keepEnds);
  }

  /** Takes up to `maxLength` values from the lowest range and removes them. */
  shift(maxLength: number): [number, number] | undefined {
    if (this.starts.length === 0) return undefined;
    const start = this.starts[0]!;
    const end = Math.min(this.ends[0]!, start + maxLength);
    if (end === this.ends[0]) {
      this.starts.shift();
      this.ends.shift();
    } else {
      this.starts[0] = end;
    }
    return [start, end];
  }

  /** Drops the lowest ranges until at most `maxRanges` remain. */
  trimTo(maxRanges: number): void {
    const excess = this.starts.length - maxRanges;
    if (excess > 0) {
      this.starts.splice(0, excess);
      this.ends.splice(0, excess);
    }
  }

  /** Sum of the lengths of all ranges. */
  total(): number {
    let sum = 0;
    for (let i = 0; i < this.starts.length; i += 1) sum += this.ends[i]! - this.starts[i]!;
    return sum;
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
  }
}
