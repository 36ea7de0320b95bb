import { longRegressions, regressions } from './regressions';
import { describeScenario, randomScenario, type Scenario } from './scenario';
import { runScenario, type RunOptions, type RunResult } from './world';

export type Family = 'random' | 'long' | { regression: string };

export function scenarioFor(seed: number, family: Family): Scenario {
  if (family === 'random') return randomScenario(seed);
  if (family === 'long') return randomScenario(seed, true);
  const make = regressions[family.regression] ?? longRegressions[family.regression];
  if (!make) throw new Error(`no regression scenario named ${family.regression}`);
  return make(seed);
}

/** The command that replays exactly this run, verbosely. */
export function replayCommand(seed: number, family: Family): string {
  if (family === 'random') return `SIM_SEED=${seed} npm run sim`;
  if (family === 'long') return `SIM_SEED=${seed} npm run sim -- --long`;
  return `SIM_SEED=${seed} npm run sim -- --regression ${family.regression}`;
}

export function runOne(seed: number, family: Family, options: RunOptions = {}): RunResult {
  return runScenario(scenarioFor(seed, family), options);
}

/** One line per failed run: what broke, and how to replay it. */
export function failureReport(r: RunResult, family: Family): string {
  const head = r.failures[0]!;
  const more = r.failures.length > 1 ? ` (+${r.failures.length - 1} more: ${[...new Set(r.failures.slice(1).map((f) => f.kind))].join(', ')})` : '';
  return `seed ${r.scenario.seed} [${head.kind}] @${head.atMs.toFixed(0)}ms ${head.message}${more}\n    ${describeScenario(r.scenario)}\n    ${replayCommand(r.scenario.seed, family)}`;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summarize(results: RunResult[], wallMs: number): string {
  const failed = results.filter((r) => !r.ok);
  const kinds = new Map<string, number>();
  for (const r of failed) for (const k of new Set(r.failures.map((f) => f.kind))) kinds.set(k, (kinds.get(k) ?? 0) + 1);
  // Efficiency of the runs where it is checked (≥ 32 packets of data), and of the tiny ones apart.
  const checked = results.filter((r) => r.efficiencyBound !== undefined);
  const eff = checked.map((r) => r.efficiency!).sort((a, b) => a - b);
  const effTiny = results.filter((r) => r.efficiency !== undefined && r.efficiencyBound === undefined).map((r) => r.efficiency!).sort((a, b) => a - b);
  const effNoLoss = checked.filter((r) => r.dataPathLoss === 0).map((r) => r.efficiency!).sort((a, b) => a - b);
  const headroom = results
    .filter((r) => r.efficiency !== undefined && r.efficiencyBound !== undefined)
    .map((r) => r.efficiency! / r.efficiencyBound!)
    .sort((a, b) => a - b);
  const virtual = results.map((r) => r.virtualMs).sort((a, b) => a - b);
  const walls = results.map((r) => r.wallMs).sort((a, b) => a - b);
  const budgetUse = results.filter((r) => r.completedMs !== undefined).map((r) => r.virtualMs / r.scenario.budgetMs).sort((a, b) => a - b);
  const overCap = results.map((r) => Math.max(r.inflight.client.overCapPackets, r.inflight.server.overCapPackets)).sort((a, b) => a - b);
  const queueDrops = results
    .map((r) => {
      const link = r.scenario.direction === 'upload' ? r.links.c2s : r.links.s2c;
      return link.packets === 0 ? 0 : (100 * link.dropped.queue) / link.packets;
    })
    .sort((a, b) => a - b);
  const pct = (xs: number[], digits = 2) =>
    xs.length === 0 ? '-' : [50, 90, 99, 100].map((p) => `p${p}=${percentile(xs, p).toFixed(digits)}`).join(' ');
  const totalBytes = results.reduce((sum, r) => sum + r.scenario.sizeBytes, 0);
  const lines = [
    `runs            ${results.length}   failed ${failed.length}${kinds.size ? `   (${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}`,
    `data            ${(totalBytes / 1024 / 1024).toFixed(1)} MiB in all`,
    `virtual time    total ${(virtual.reduce((a, b) => a + b, 0) / 1000).toFixed(0)} s   per run ${pct(virtual.map((v) => v / 1000), 1)} s`,
    `budget used     ${pct(budgetUse)} (virtual time ÷ budget)`,
    `wall time       total ${(wallMs / 1000).toFixed(1)} s   per run ${pct(walls, 1)} ms`,
    `efficiency      ${pct(eff)}   (data bytes sent ÷ bytes needed, ${eff.length} runs of ≥ 32 packets)`,
    `  no path loss  ${pct(effNoLoss)}   (${effNoLoss.length} runs)`,
    `  < 32 packets  ${pct(effTiny)}   (${effTiny.length} runs, not checked)`,
    `  ÷ its bound   ${pct(headroom)}`,
    `in flight       over the peak cap by ${pct(overCap, 1)} packets`,
    `queue drops     ${pct(queueDrops, 1)} % of the data direction's packets (self-inflicted loss)`,
  ];
  return lines.join('\n');
}
