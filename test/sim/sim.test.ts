import { describe, expect, it } from 'vitest';
import { longRegressions, regressions } from './regressions';
import { failureReport, runOne, type Family } from './suite';

/**
 * The deterministic simulator over fixed seeds: the same seeds every run, so CI is reproducible. Every
 * failure names its seed and the command that replays it with a trace (`SIM_SEED=… npm run sim`).
 * SIM_TEST_SEEDS raises the count (e.g. 20000 for a soak); the default is 2,000 in four blocks.
 */
const totalSeeds = Number(process.env.SIM_TEST_SEEDS ?? 2_000);
const blocks = 4;
const firstSeed = 1;

function check(seeds: number[], family: Family): void {
  const failed: string[] = [];
  for (const seed of seeds) {
    const r = runOne(seed, family);
    if (!r.ok) failed.push(failureReport(r, family));
  }
  expect(failed.length, `${failed.length} of ${seeds.length} runs failed; replay each with its SIM_SEED line:\n${failed.join("\n")}\n`).toBe(0);
}

describe('simulator: replay', () => {
  it('a seed replays exactly (same trace, same stats)', () => {
    for (const seed of [7, 42, 1234]) {
      const a: string[] = [];
      const b: string[] = [];
      const ra = runOne(seed, 'random', { trace: (line) => a.push(line) });
      const rb = runOne(seed, 'random', { trace: (line) => b.push(line) });
      expect(b).toEqual(a);
      expect(rb.stats).toEqual(ra.stats);
      expect(rb.virtualMs).toBe(ra.virtualMs);
    }
  });
});

describe('simulator: random scenarios', () => {
  const perBlock = Math.ceil(totalSeeds / blocks);
  for (let b = 0; b < blocks; b += 1) {
    const from = firstSeed + b * perBlock;
    const count = Math.max(0, Math.min(perBlock, totalSeeds - b * perBlock));
    it(`seeds ${from}–${from + count - 1}`, () => {
      check(Array.from({ length: count }, (_, i) => from + i), 'random');
    });
  }
});

describe('simulator: regressions', () => {
  for (const name of Object.keys(regressions)) {
    it(name, () => check([1, 2, 3], { regression: name }));
  }
});

describe.skipIf(!process.env.SIM_LONG)('simulator: long scenarios (SIM_LONG=1)', () => {
  for (const name of Object.keys(longRegressions)) {
    it(name, () => check([1], { regression: name }), 120_000);
  }
});
