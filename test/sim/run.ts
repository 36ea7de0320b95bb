/**
 * npm run sim -- --seeds N [--from S] [--long] [--verbose] [--regression NAME | --regressions]
 * SIM_SEED=<seed> npm run sim [-- --long | --regression NAME]   replays one seed with an event trace.
 */
import { longRegressions, regressions } from './regressions';
import { describeScenario } from './scenario';
import { failureReport, replayCommand, runOne, summarize, type Family } from './suite';
import type { RunResult } from './world';

function parseArgs(argv: string[]) {
  const opts = { seeds: -1, from: 1, long: false, verbose: false, regression: undefined as string | undefined, regressions: false };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--seeds') opts.seeds = Number(value());
    else if (a === '--from') opts.from = Number(value());
    else if (a === '--long') opts.long = true;
    else if (a === '--verbose' || a === '-v') opts.verbose = true;
    else if (a === '--regression') opts.regression = value();
    else if (a === '--regressions') opts.regressions = true;
    else if (a === '--help' || a === '-h') {
      console.log('npm run sim -- --seeds N [--from S] [--long] [--verbose] [--regression NAME | --regressions]\nSIM_SEED=<seed> npm run sim   replays one seed verbosely');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  // Default: 200 ordinary seeds, or 8 long ones (each 8–64 MiB).
  if (opts.seeds === -1) opts.seeds = opts.long ? 8 : 200;
  if (!Number.isInteger(opts.seeds) || opts.seeds < 0 || !Number.isInteger(opts.from)) throw new Error('--seeds and --from take integers');
  return opts;
}

function printResult(r: RunResult): void {
  const eff = r.efficiency === undefined ? '-' : `${r.efficiency.toFixed(2)}${r.efficiencyBound === undefined ? '' : `≤${r.efficiencyBound.toFixed(2)}`}`;
  console.log(
    `${r.ok ? 'ok  ' : 'FAIL'} seed ${String(r.scenario.seed).padEnd(8)} virtual ${(r.virtualMs / 1000).toFixed(2).padStart(7)} s / ${(r.scenario.budgetMs / 1000).toFixed(0)} s  wall ${r.wallMs.toFixed(0).padStart(5)} ms  eff ${eff}  loss ${(r.dataPathLoss * 100).toFixed(1)}%  ${describeScenario(r.scenario)}`,
  );
}

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const family: Family = opts.regression ? { regression: opts.regression } : opts.long ? 'long' : 'random';

  const replay = process.env.SIM_SEED;
  if (replay !== undefined && replay !== '') {
    const seed = Number(replay);
    if (!Number.isInteger(seed)) throw new Error(`SIM_SEED must be an integer, got ${replay}`);
    const r = runOne(seed >>> 0, family, { trace: (line) => console.log(line) });
    console.log('');
    printResult(r);
    console.log(`client stats ${JSON.stringify(r.stats.client)}`);
    console.log(`server stats ${JSON.stringify(r.stats.server)}`);
    console.log(`links c2s ${JSON.stringify(r.links.c2s)}`);
    console.log(`links s2c ${JSON.stringify(r.links.s2c)}`);
    for (const f of r.failures) console.log(`FAIL [${f.kind}] @${f.atMs.toFixed(1)}ms ${f.message}`);
    process.exitCode = r.ok ? 0 : 1;
    return;
  }

  const runs: { seed: number; family: Family }[] = [];
  if (opts.regressions) {
    for (const name of Object.keys(regressions)) runs.push({ seed: opts.from, family: { regression: name } });
    if (opts.long) for (const name of Object.keys(longRegressions)) runs.push({ seed: opts.from, family: { regression: name } });
  } else {
    if (opts.long && !opts.regression) for (const name of Object.keys(longRegressions)) runs.push({ seed: opts.from, family: { regression: name } });
    for (let i = 0; i < opts.seeds; i += 1) runs.push({ seed: (opts.from + i) >>> 0, family });
  }

  const start = performance.now();
  const results: RunResult[] = [];
  const failures: string[] = [];
  for (const { seed, family: f } of runs) {
    const r = runOne(seed, f);
    results.push(r);
    if (opts.verbose) printResult(r);
    if (!r.ok) {
      failures.push(failureReport(r, f));
      if (!opts.verbose) console.log(`FAIL ${replayCommand(seed, f)}   [${r.failures[0]!.kind}]`);
    }
  }
  const wallMs = performance.now() - start;
  console.log('');
  console.log(summarize(results, wallMs));
  if (failures.length) {
    console.log(`\n${failures.length} failed:`);
    for (const f of failures) console.log(f);
  }
  process.exitCode = failures.length ? 1 : 0;
}

main();
