/**
 * A bounded single-consumer async queue. When full, the oldest item is dropped: consumers of status
 * updates care about the latest state, and a consumer that stops reading must not grow memory.
 */
export class BoundedAsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter: ((result: IteratorResult<T>) => void) | undefined;
  private closed = false;
  /** Items dropped because the consumer fell behind. */
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.capacity) {
      this.items.shift();
      this.dropped++;
    }
    this.items.push(item);
  }

  /** No more items; those queued are still delivered. */
  close(): void {
    this.closed = true;
    if (this.waiter && this.items.length === 0) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter) return Promise.reject(new Error('BoundedAsyncQueue has one consumer; next() called while a read is pending'));
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** `break` out of a `for await`: stop delivering and free what is queued. */
  return(): Promise<IteratorResult<T>> {
    this.items.length = 0;
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
