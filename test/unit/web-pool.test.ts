import { describe, expect, it } from 'vitest';
import { runPool } from '../../web/src/pool';
import { RateMeter } from '../../web/src/transfers';

describe('the console page: bounded pools and rates', () => {
  it('runs at most `concurrency` workers and takes items lazily', async () => {
    let running = 0;
    let most = 0;
    let taken = 0;
    function* items() {
      for (let i = 0; i < 1000; i++) {
        taken++;
        // Never more than the lanes ahead of the workers: a huge folder is not all started at once.
        expect(taken - done).toBeLessThanOrEqual(4);
        yield i;
      }
    }
    let done = 0;
    await runPool(items(), 4, async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((next) => setTimeout(next, 0));
      running--;
      done++;
    });
    expect(done).toBe(1000);
    expect(most).toBe(4);
  });

  it('starts nothing new after a failure and throws the first error', async () => {
    const started: number[] = [];
    const failure = runPool([1, 2, 3, 4, 5, 6, 7, 8], 2, async (n) => {
      started.push(n);
      await new Promise((next) => setTimeout(next, n === 2 ? 0 : 5));
      if (n === 2) throw new Error('part 2 failed');
    });
    await expect(failure).rejects.toThrow('part 2 failed');
    expect(started).toEqual([1, 2]);
  });

  it('measures the rate over a sliding window, in kbit/s', () => {
    const meter = new RateMeter(3000);
    expect(meter.sample(0, 0)).toBe(0);
    // 1,000,000 bytes in 1 s = 8,000 kbit/s.
    expect(meter.sample(1_000_000, 1000)).toBe(8000);
    expect(meter.sample(2_000_000, 2000)).toBe(8000);
    // A stall: the old samples leave the window and the rate falls.
    expect(meter.sample(2_000_000, 6000)).toBeLessThan(8000);
  });
});
