/**
 * npm run bench:wan -- [--only 200M-100ms-1%,policy] [--seconds 12] [--policy-seconds 20] [--max-size 2GiB]
 *                      [--queue-ms 0] [--seed 1] [--fallback-concurrency 4] [--fallback-cc default|cubic|bbr]
 *                      [--skip-prove] [--profile auto|never] [--out bench/RESULTS.md] [--no-write] [--keep-temp] [--temp-dir auto|DIR]
 *
 * The WAN benchmark of issue 4, as root: the emulated link (link.ts) is proven first (ping RTT, TCP at
 * the rate, measured loss), then for each link Slipstream uploads into the local stack in the server
 * namespace and the HTTP fallback, TCP CUBIC, TCP BBR and udx-native move the same amount of data over
 * the same link, one after another; then the policies next to a TCP CUBIC flow, and the ramp. Prints
 * the tables with every issue-4 target marked met or not, and writes them to bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatSummary, readProfile, summarizeProfile } from '../cpu-profile';
import { childPids, Cleanup, fixed, formatSize, freeDiskBytes, machineInfo, markdownTable, MiB, parseArgs, parseSize, processCpuSeconds, writeRandomFile, type RatePolicy } from '../lib';
import {
  drain,
  finishSlipstream,
  iperfResult,
  ping,
  prepareSlipstream,
  runFallback,
  runIperfClient,
  runBlast,
  runIperfTcp,
  runSlipstream,
  runUdx,
  startIperfServer,
  type FlowName,
  type FlowResult,
  type PingResult,
} from './flows';
import { removeLeftovers, repoRoot, run, startWanLink, type DirectionCounters, type LinkCounters, type LinkSettings, type WanLink } from './link';
import { setUploadPreferences, startServerStack, type ServerStack } from './stack';

const usage = `npm run bench:wan -- [--only 200M-100ms-1%,policy] [--seconds 12] [--policy-seconds 20] [--max-size 2GiB]
                     [--queue-ms 0 (auto: one RTT, 20..100 ms)] [--seed 1] [--fallback-concurrency 4] [--fallback-cc cubic|bbr|default]
                     [--skip-prove] [--profile auto|never] [--out bench/RESULTS.md] [--no-write] [--keep-temp] [--temp-dir auto|DIR]
                     [--flows all|slipstream[,fallback,cubic,bbr,udx]] [--trace]
Scenarios: 200M-{10,100,300}ms-{0,0.1,1,5,10}%, 1G-100ms-1%, policy-fair, policy-low, policy-fixed, policy-fixed+cubic.
--only takes a comma-separated list of scenario names or parts of them (the proving step always runs unless --skip-prove;
--only prove runs it alone).`;

const args = parseArgs(
  process.argv.slice(2),
  {
    only: '',
    seconds: 12,
    policySeconds: 20,
    maxSize: '2GiB',
    queueMs: 0,
    seed: 1,
    fallbackConcurrency: 4,
    fallbackCc: 'default',
    skipProve: false,
    profile: 'auto',
    out: 'bench/RESULTS.md',
    noWrite: false,
    keepTemp: false,
    tempDir: 'auto',
    flows: 'all',
    trace: false,
  },
  usage,
);
if (!(args.seconds >= 3 && args.seconds <= 120)) throw new Error('--seconds: 3..120');
if (!(args.policySeconds >= 5 && args.policySeconds <= 120)) throw new Error('--policy-seconds: 5..120');
const maxSize = parseSize(args.maxSize);
// The Slipstream client inherits it and prints its rate controller's state every 200 ms (flows.ts relays it).
if (args.trace) process.env.SLIPSTREAM_TRACE = '1';

/** The default datagram (UDP payload) and what of it is not data (header 17 + tag 16 + DATA frame 9): the rate paces datagrams. */
const datagramBytes = 1400;
const datagramOverheadBytes = 42;
/** Per-packet overhead of a full Slipstream data packet on the wire: IPv4 20 + UDP 8 + the datagram's own. */
const slipstreamPacketOverheadBytes = 28 + datagramOverheadBytes;
/** Slipstream stops at this multiple of --seconds (its file is sized for --seconds at the link rate). */
const slipstreamDeadlineFactor = 2;
/** Baselines that move a fixed amount (fallback, udx) stop this long after --seconds. */
const baselineExtraS = 5;
const fixedTargetMbps = 100;
/** The emulator's proofs: TCP needs this long to get past slow start and its overshoot on a 100 ms link. */
const proofSeconds = 20;
/** …and its first seconds (slow start, then the loss burst that ends it) are left out of the figure. */
const proofOmitS = 5;
/** 1400-byte packets each way for the loss proof: 10 s of it gives > 10^5 draws per direction (±3 % at 1 % loss). */
const blastPps = 12_000;

interface Scenario {
  name: string;
  slug: string;
  kind: 'transfer' | 'policy';
  link: LinkSettings;
  policy?: { ratePolicy: RatePolicy; targetMbps: number; withTcp: boolean };
}

/** `--flows slipstream` (or `slipstream,cubic`): measure only those flows of each link, for quick iterations. */
const wantFlow = (name: 'fallback' | 'cubic' | 'bbr' | 'udx') => args.flows === 'all' || args.flows.split(',').includes(name);
const queueFor = (rttMs: number) => (args.queueMs > 0 ? args.queueMs : Math.min(100, Math.max(20, rttMs)));
const linkOf = (rateMbps: number, rttMs: number, lossPercent: number): LinkSettings => ({ rateMbps, rttMs, lossPercent, queueMs: queueFor(rttMs) });
const rateName = (rateMbps: number) => (rateMbps >= 1000 ? `${rateMbps / 1000}G` : `${rateMbps}M`);

function allScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const rttMs of [10, 100, 300]) {
    for (const lossPercent of [0, 0.1, 1, 5, 10]) {
      const name = `200M-${rttMs}ms-${lossPercent}%`;
      out.push({ name, slug: name.replace('%', 'pct'), kind: 'transfer', link: linkOf(200, rttMs, lossPercent) });
    }
  }
  const fairLink = linkOf(200, 50, 0);
  out.push({ name: 'policy-fair', slug: 'policy-fair', kind: 'policy', link: fairLink, policy: { ratePolicy: 'fair', targetMbps: 200, withTcp: true } });
  out.push({ name: 'policy-low', slug: 'policy-low', kind: 'policy', link: fairLink, policy: { ratePolicy: 'low', targetMbps: 200, withTcp: true } });
  out.push({ name: 'policy-fixed', slug: 'policy-fixed', kind: 'policy', link: fairLink, policy: { ratePolicy: 'fixed', targetMbps: fixedTargetMbps, withTcp: false } });
  out.push({ name: 'policy-fixed+cubic', slug: 'policy-fixed-cubic', kind: 'policy', link: fairLink, policy: { ratePolicy: 'fixed', targetMbps: fixedTargetMbps, withTcp: true } });
  // Last: its engine profile (if any) then covers only this scenario.
  out.push({ name: '1G-100ms-1%', slug: '1G-100ms-1pct', kind: 'transfer', link: linkOf(1000, 100, 1) });
  return out;
}

function selected(): Scenario[] {
  const filters = args.only
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean);
  const all = allScenarios();
  if (filters.length === 0) return all;
  const chosen = all.filter((s) => filters.some((f) => s.name === f || s.name.includes(f)));
  // `--only prove`: the emulator's proof alone.
  if (chosen.length === 0 && !filters.includes('prove')) throw new Error(`--only ${args.only} matches no scenario\n${usage}`);
  return chosen;
}

const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const log = (line: string) => console.log(line);

// ── Tools ───────────────────────────────────────────────────────────────────────────────────────────

async function ensureTools(): Promise<void> {
  const missing: string[] = [];
  for (const [binary, pkg] of [
    ['gcc', 'gcc'],
    ['iperf3', 'iperf3'],
    ['ip', 'iproute2'],
    ['ping', 'iputils-ping'],
  ] as const) {
    if ((await run('sh', ['-c', `command -v ${binary}`])).code !== 0) missing.push(pkg);
  }
  if (missing.length > 0) {
    log(`installing ${missing.join(' ')} (apt-get)…`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env });
  }
  try {
    createRequire(import.meta.url).resolve('udx-native');
  } catch {
    log('installing udx-native (npm devDependency)…');
    execFileSync('npm', ['install', '--no-audit', '--no-fund'], { stdio: 'inherit', cwd: repoRoot });
  }
}

// ── Measurements per scenario ───────────────────────────────────────────────────────────────────────

interface TransferRow {
  scenario: Scenario;
  ping: PingResult;
  flows: Partial<Record<FlowName, FlowResult>>;
  /** Random-loss drops ÷ loss draws over every flow of the scenario, both directions. */
  measuredLossPercent?: number;
  lossDraws: number;
  rampS?: number;
  finalRateMbps?: number;
  /** Processes whose CPU profile was taken during the Slipstream run. */
  profiled?: { clientPid?: number; enginePid?: number };
}

interface PolicyRow {
  scenario: Scenario;
  slipstream: FlowResult;
  tcp?: FlowResult;
  /** Slipstream's data rate after the first 2 s (SDK progress), for `fixed`. */
  steadyMbps?: number;
}

const deliverable = (s: LinkSettings) => s.rateMbps * (1 - s.lossPercent / 100);
const bytesFor = (rateMbps: number, seconds: number) => Math.min(maxSize, Math.floor((rateMbps * 1e6 * seconds) / 8 / MiB) * MiB);

/**
 * Where the data files and the local S3 live: RAM (/dev/shm) when it has room, so a transfer is measured
 * against the link and not against this shared VM's disk (iperf3 and udx-native move bytes from memory
 * to memory). On disk, writing back the parts of a 1.4 GB upload made the local S3's commit take 4.5 s.
 */
async function benchTempRoot(dataFileBytes: number[]): Promise<string> {
  if (args.tempDir !== 'auto') return args.tempDir;
  const ram = '/dev/shm';
  if (!existsSync(ram)) return tmpdir();
  // The data files; a run's parts and the object they make; as much again for a run that stopped before
  // its commit and left its parts; and 1 GiB for the stack's logs and tables.
  const neededBytes = dataFileBytes.reduce((sum, b) => sum + b, 0) + 4 * Math.max(...dataFileBytes) + 1024 * MiB;
  return (await freeDiskBytes(ram)) >= neededBytes ? ram : tmpdir();
}

function addCounters(into: { drops: number; draws: number }, c: LinkCounters | undefined): void {
  if (!c) return;
  for (const d of [c.up, c.down]) {
    into.drops += d.droppedLoss;
    into.draws += d.lossTrials;
  }
}

/** Time from `go` until the delivered rate (300 ms windows) first reaches 90 % of the final rate. */
function ramp(samples: { ms: number; bytes: number }[] | undefined): { rampS?: number; finalRateMbps?: number } {
  if (!samples || samples.length < 10) return {};
  const windowMs = 300;
  const rates: { ms: number; mbps: number }[] = [];
  for (let i = 0, j = 0; i < samples.length; i += 1) {
    // The latest j whose window still spans windowMs.
    while (j + 1 < i && samples[i]!.ms - samples[j + 1]!.ms >= windowMs) j += 1;
    const span = samples[i]!.ms - samples[j]!.ms;
    if (span >= windowMs) rates.push({ ms: samples[i]!.ms, mbps: ((samples[i]!.bytes - samples[j]!.bytes) * 8) / (span * 1000) });
  }
  // The run ends when the last bytes went through (the session may then wait for the S3 commit).
  const total = samples.at(-1)!.bytes;
  const end = samples.find((s) => s.bytes >= 0.99 * total)!.ms;
  // The final rate: median over 40–90 % of the run (after the start, before the last bytes trickle in).
  const late = rates.filter((r) => r.ms >= end * 0.4 && r.ms <= end * 0.9).map((r) => r.mbps).sort((a, b) => a - b);
  if (late.length === 0) return {};
  const finalRateMbps = late[Math.floor(late.length / 2)]!;
  const reached = rates.find((r) => r.mbps >= 0.9 * finalRateMbps);
  return { finalRateMbps, ...(reached ? { rampS: reached.ms / 1000 } : {}) };
}

async function runTransferScenario(
  link: WanLink,
  stack: ServerStack,
  scenario: Scenario,
  context: { tmpDir: string; fileFor: (rateMbps: number) => string; profileDir?: string; stackPid?: number },
): Promise<TransferRow> {
  const s = scenario.link;
  await link.configure(s);
  await drain(link);
  const size = bytesFor(s.rateMbps, args.seconds);
  const file = context.fileFor(s.rateMbps);
  const row: TransferRow = { scenario, ping: await ping(link), flows: {}, lossDraws: 0 };
  log(`  ping ${row.ping.error ?? `avg ${fixed(row.ping.avgMs, 2)} ms (setting ${s.rttMs} ms), ${row.ping.lossPercent}% lost`}`);
  const say = (r: FlowResult) =>
    log(`  ${r.flow.padEnd(13)} ${r.ok ? `${fixed(r.goodputMbps)} Mbit/s${r.partial ? ' (stopped at its deadline)' : ''} in ${fixed(r.seconds)} s` : `FAILED: ${r.error}`}`);

  // Slipstream, with the bucket's upload policy fair and the target at the link rate.
  const rateKbps = Math.round(s.rateMbps * 1000);
  const slipstreamResult = await (async (): Promise<FlowResult> => {
    try {
      await setUploadPreferences(stack, rateKbps, 'fair');
      return await runSlipstream(link, stack, {
        label: scenario.slug,
        file,
        size,
        ratePolicy: 'fair',
        targetRateKbps: rateKbps,
        deadlineS: args.seconds * slipstreamDeadlineFactor,
        tmpDir: context.tmpDir,
        ...(context.profileDir ? { env: { ...process.env, NODE_OPTIONS: profilerOptions(), SLIPSTREAM_BENCH_CPU_PROFILE_DIR: context.profileDir } } : {}),
        onStarted: (start) => {
          if (!context.profileDir) return;
          // The preload starts sampling on SIGUSR2: the client (its own process) and the stack's engine.
          start.flow.child.kill('SIGUSR2');
          const engine = context.stackPid ? enginePid(context.stackPid) : undefined;
          if (engine) process.kill(engine, 'SIGUSR2');
          row.profiled = { clientPid: start.flow.child.pid!, ...(engine ? { enginePid: engine } : {}) };
        },
      });
    } catch (error) {
      return { flow: 'Slipstream', ok: false, partial: false, error: (error as Error).message, detail: {} };
    }
  })();
  row.flows.Slipstream = slipstreamResult;
  say(slipstreamResult);
  Object.assign(row, ramp(slipstreamResult.samples));
  await drain(link);

  const baselines: [FlowName, 'fallback' | 'cubic' | 'bbr' | 'udx', () => Promise<FlowResult>][] = [
    ['HTTP fallback', 'fallback', () => runFallback(link, stack, { label: scenario.slug, file, size, concurrency: args.fallbackConcurrency, deadlineS: args.seconds + baselineExtraS })],
    ['TCP CUBIC', 'cubic', () => runIperfTcp(link, 'cubic', args.seconds)],
    ['TCP BBR', 'bbr', () => runIperfTcp(link, 'bbr', args.seconds)],
    ['udx-native', 'udx', () => runUdx(link, { bytes: size, deadlineS: args.seconds + baselineExtraS })],
  ];
  for (const [name, option, measure] of baselines) {
    if (!wantFlow(option)) continue;
    row.flows[name] = await measure();
    say(row.flows[name]!);
    await drain(link);
  }

  const loss = { drops: 0, draws: 0 };
  for (const r of Object.values(row.flows)) addCounters(loss, r?.counters);
  row.lossDraws = loss.draws;
  if (loss.draws > 0) row.measuredLossPercent = (100 * loss.drops) / loss.draws;
  return row;
}

async function runPolicyScenario(link: WanLink, stack: ServerStack, scenario: Scenario, context: { tmpDir: string; fileFor: (rateMbps: number) => string }): Promise<PolicyRow> {
  const s = scenario.link;
  const p = scenario.policy!;
  await link.configure(s);
  await drain(link);
  const seconds = args.policySeconds;
  // Larger than the policy can move in `seconds`: it runs until its deadline.
  const size = bytesFor(s.rateMbps, seconds + 5);
  const targetKbps = Math.round(p.targetMbps * 1000);
  try {
    await setUploadPreferences(stack, targetKbps, p.ratePolicy);
    const start = await prepareSlipstream(link, stack, {
      label: scenario.slug,
      file: context.fileFor(s.rateMbps),
      size,
      ratePolicy: p.ratePolicy,
      targetRateKbps: targetKbps,
      deadlineS: seconds,
      tmpDir: context.tmpDir,
    });
    const server = p.withTcp ? await startIperfServer(link) : undefined;
    await link.resetCounters();
    // Both flows start together.
    start.flow.go();
    const tcpOut = server ? runIperfClient(link, server, ['-C', 'cubic', '-t', String(seconds)], seconds) : undefined;
    const slipstream = await finishSlipstream(stack, start);
    const tcp = server && tcpOut ? await iperfResult('TCP CUBIC', server, await tcpOut) : undefined;
    slipstream.counters = await link.counters();
    await drain(link);
    const progress = start.flow.progress;
    const after = progress.filter((m) => Number(m.elapsedMs) >= 2000);
    const steadyMbps =
      after.length >= 2 ? ((Number(after.at(-1)!.bytesDone) - Number(after[0]!.bytesDone)) * 8) / ((Number(after.at(-1)!.elapsedMs) - Number(after[0]!.elapsedMs)) * 1000) : undefined;
    return { scenario, slipstream, ...(tcp ? { tcp } : {}), ...(steadyMbps !== undefined ? { steadyMbps } : {}) };
  } catch (error) {
    return { scenario, slipstream: { flow: 'Slipstream', ok: false, partial: false, error: (error as Error).message, detail: {} } };
  }
}

// ── Proving the emulator ────────────────────────────────────────────────────────────────────────────

interface ProofRow {
  check: string;
  setting: string;
  measured: string;
  met: boolean;
}

async function proveLink(link: WanLink): Promise<ProofRow[]> {
  const rows: ProofRow[] = [];
  const add = (row: ProofRow) => {
    rows.push(row);
    log(`  ${row.met ? '✓' : '✗'} ${row.check}: ${row.measured} (setting ${row.setting})`);
  };

  for (const rateMbps of [200, 1000]) {
    const settings = linkOf(rateMbps, 100, 0);
    await link.configure(settings);
    await drain(link);
    if (rateMbps === 200) {
      const p = await ping(link, 40);
      add({
        check: `ping RTT within 2 ms of the setting (${rateName(rateMbps)}, 100 ms, idle)`,
        setting: '100 ms',
        measured: p.error ?? `avg ${fixed(p.avgMs, 2)} ms, min ${fixed(p.minMs, 2)} ms`,
        met: p.avgMs !== undefined && Math.abs(p.avgMs - 100) <= 2,
      });
    }
    const cpu0 = processCpuSeconds(link.emulatorPid);
    const t0 = performance.now();
    const tcp = await runIperfTcp(link, 'cubic', proofSeconds, proofOmitS);
    const emulatorCpu = (processCpuSeconds(link.emulatorPid) - cpu0) / ((performance.now() - t0) / 1000);
    const c = tcp.counters;
    add({
      check: `TCP CUBIC (iperf3, ${proofSeconds} s after the first ${proofOmitS}) with no loss reaches ≥ 90 % of the rate (${rateName(rateMbps)}, 100 ms, queue ${settings.queueMs} ms)`,
      setting: `${rateMbps} Mbit/s`,
      measured: tcp.ok
        ? `${fixed(tcp.goodputMbps)} Mbit/s = ${fixed((100 * tcp.goodputMbps!) / rateMbps)} % (TCP's ceiling with 1448-byte segments in 1500-byte packets: 96.5 %); emulator CPU ${fixed(emulatorCpu * 100, 0)} % of a core` +
          `${c ? `, queue drops ${c.up.droppedQueue}, ring drops ${c.up.droppedRing + c.down.droppedRing}, write errors ${c.up.writeErrors + c.down.writeErrors}` : ''}`
        : `FAILED: ${tcp.error}`,
      met: tcp.ok && tcp.goodputMbps! >= 0.9 * rateMbps,
    });
    await drain(link);
  }

  for (const lossPercent of [1, 10]) {
    await link.configure(linkOf(200, 10, lossPercent));
    await drain(link);
    const probe = await runBlast(link, { pps: blastPps, packetBytes: 1400, seconds: proofSeconds / 2 });
    for (const [direction, d] of [
      ['client → server', probe.counters.up],
      ['server → client', probe.counters.down],
    ] as const) {
      const measured = d.lossTrials > 0 ? (100 * d.droppedLoss) / d.lossTrials : NaN;
      add({
        check: `measured random loss within 10 % of the setting (${direction}, ${blastPps} UDP packets/s each way for ${proofSeconds / 2} s)`,
        setting: `${lossPercent} %`,
        measured: `${fixed(measured, 3)} % (${d.droppedLoss} of ${d.lossTrials} packets)${probe.error ? `; iperf3: ${probe.error}` : ''}`,
        met: Math.abs(measured - lossPercent) <= 0.1 * lossPercent,
      });
    }
  }
  return rows;
}

// ── Profiling (the 1 Gbit/s scenario) ───────────────────────────────────────────────────────────────

function profilerOptions(): string {
  const preload = new URL('../cpu-profile-preload.mjs', import.meta.url).href;
  return `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim();
}

/** The engine process of the stack (a child of local/main.ts). */
function enginePid(stackPid: number): number | undefined {
  return childPids(stackPid, 'engine-service/main.ts')[0];
}

function profileSummaries(dir: string, labels: Map<number, string>): string {
  if (!existsSync(dir)) return '';
  const parts: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const pid = Number(/(\d+)\.cpuprofile$/.exec(file)?.[1]);
    parts.push(formatSummary(`**${labels.get(pid) ?? `process ${pid}`}** (V8 sampling profiler, 0.5 ms)`, summarizeProfile(readProfile(join(dir, file)))));
  }
  return parts.join('\n\n');
}

// ── Report ──────────────────────────────────────────────────────────────────────────────────────────

interface Target {
  target: string;
  scenario: string;
  measured: string;
  met: boolean | undefined;
}

const pct = (value: number | undefined, digits = 1) => (value === undefined ? '—' : `${fixed(value, digits)} %`);
const mark = (met: boolean | undefined) => (met === undefined ? 'not measured' : met ? '**met**' : '**not met**');

function goodputCell(r: FlowResult | undefined): string {
  if (!r) return '—';
  if (!r.ok) return `FAILED: ${r.error?.slice(0, 160) ?? ''}`;
  return `${fixed(r.goodputMbps)}${r.partial ? '*' : ''}`;
}

/** Data bytes the client sent ÷ bytes delivered, from the link's counters (IP bytes − 70 B per packet). */
function dataRatio(r: FlowResult | undefined): number | undefined {
  const up: DirectionCounters | undefined = r?.counters?.up;
  if (!r?.ok || !up || !r.bytesDelivered) return undefined;
  return (up.bytesIn - slipstreamPacketOverheadBytes * up.packetsIn) / r.bytesDelivered;
}
const wireRatio = (r: FlowResult | undefined) => (r?.ok && r.counters && r.bytesDelivered ? r.counters.up.bytesIn / r.bytesDelivered : undefined);

function ratioCell(slip: FlowResult | undefined, base: FlowResult | undefined): string {
  if (!slip?.ok || !base?.ok || !slip.goodputMbps || !base.goodputMbps) return '—';
  return `${fixed(slip.goodputMbps / base.goodputMbps, slip.goodputMbps / base.goodputMbps >= 10 ? 0 : 2)}×`;
}

function targets(rows: TransferRow[], policies: PolicyRow[]): Target[] {
  const out: Target[] = [];
  const byName = new Map(rows.map((r) => [r.scenario.name, r]));
  const share = (name: string, minimum: number) => {
    const r = byName.get(name);
    const slip = r?.flows.Slipstream;
    const value = slip?.ok ? (100 * slip.goodputMbps!) / deliverable(r!.scenario.link) : undefined;
    out.push({
      target: `≥ ${minimum} % of rate × (1 − loss)`,
      scenario: name,
      measured: r ? (slip?.ok ? `${pct(value)} (${fixed(slip.goodputMbps)} of ${fixed(deliverable(r.scenario.link))} Mbit/s)` : `FAILED: ${slip?.error ?? ''}`) : 'not run',
      met: r ? value !== undefined && value >= minimum : undefined,
    });
  };
  share('200M-100ms-1%', 95);
  share('200M-300ms-5%', 90);
  for (const rtt of [10, 100, 300]) share(`200M-${rtt}ms-10%`, 85);
  share('1G-100ms-1%', 90);

  for (const r of rows) {
    const slip = r.flows.Slipstream;
    const ratio = dataRatio(slip);
    const bound = 1 / (1 - r.scenario.link.lossPercent / 100) + 0.02;
    out.push({
      target: 'bytes sent ÷ bytes delivered ≤ 1/(1 − loss) + 0.02',
      scenario: r.scenario.name,
      measured: ratio === undefined ? (slip?.ok ? 'no counters' : 'Slipstream failed') : `${fixed(ratio, 3)} (bound ${fixed(bound, 3)})`,
      met: ratio === undefined ? (slip?.ok ? undefined : false) : ratio <= bound,
    });
  }
  for (const r of rows.filter((row) => row.scenario.link.lossPercent > 0)) {
    const slip = r.flows.Slipstream;
    // The issue's baselines: TCP CUBIC, TCP BBR, udx-native (the fallback is shown beside them, not a baseline).
    const baselines = (['TCP CUBIC', 'TCP BBR', 'udx-native'] as const).map((name) => r.flows[name]).filter((b): b is FlowResult => !!b?.ok);
    const best = baselines.reduce<FlowResult | undefined>((a, b) => (!a || b.goodputMbps! > a.goodputMbps! ? b : a), undefined);
    out.push({
      target: 'ahead of every baseline (lossy link)',
      scenario: r.scenario.name,
      measured: !slip?.ok ? `Slipstream failed: ${slip?.error ?? ''}` : best ? `${fixed(slip.goodputMbps)} vs best baseline ${best.flow} ${fixed(best.goodputMbps)} Mbit/s` : 'no baseline measured',
      // Without a baseline (all skipped with --flows, or all failed) there is nothing to be ahead of.
      met: !slip?.ok ? false : best ? baselines.every((b) => slip.goodputMbps! > b.goodputMbps!) : undefined,
    });
  }
  const rampRow = byName.get('200M-100ms-0%');
  out.push({
    target: 'ramp: 90 % of the final rate within 2 s at 100 ms RTT (from the first hello)',
    scenario: '200M-100ms-0%',
    measured: rampRow ? (rampRow.rampS !== undefined ? `${fixed(rampRow.rampS, 2)} s (final ${fixed(rampRow.finalRateMbps)} Mbit/s on the wire)` : 'could not tell from the samples') : 'not run',
    met: rampRow ? rampRow.rampS !== undefined && rampRow.rampS <= 2 : undefined,
  });
  for (const p of policies) {
    const link = p.scenario.link.rateMbps;
    const slipShare = p.slipstream.ok ? (100 * p.slipstream.goodputMbps!) / link : undefined;
    const tcpShare = p.tcp?.ok ? (100 * p.tcp.goodputMbps!) / link : undefined;
    const shares = `Slipstream ${pct(slipShare)}${p.tcp ? `, TCP CUBIC ${p.tcp.ok ? pct(tcpShare) : `FAILED: ${p.tcp.error}`}` : ''} of the link`;
    const failed = !p.slipstream.ok ? `Slipstream FAILED: ${p.slipstream.error}` : undefined;
    const policy = p.scenario.policy!;
    if (policy.ratePolicy === 'fair') {
      out.push({ target: 'fair next to one TCP CUBIC flow: neither < 30 % of the link', scenario: p.scenario.name, measured: failed ?? shares, met: slipShare !== undefined && tcpShare !== undefined && slipShare >= 30 && tcpShare >= 30 });
    } else if (policy.ratePolicy === 'low') {
      out.push({ target: 'low next to one TCP CUBIC flow: TCP keeps ≥ 80 %', scenario: p.scenario.name, measured: failed ?? shares, met: tcpShare !== undefined && tcpShare >= 80 });
    } else {
      // The target rate paces datagram bytes (header, frames, tag): in data that is 1358 of every 1400.
      const held = p.steadyMbps;
      const heldDatagramMbps = held === undefined ? undefined : (held * datagramBytes) / (datagramBytes - datagramOverheadBytes);
      out.push({
        target: `fixed holds its target (${policy.targetMbps} Mbit/s) within 5 %${policy.withTcp ? ', next to one TCP CUBIC flow' : ', alone'}`,
        scenario: p.scenario.name,
        measured:
          failed ??
          `${fixed(heldDatagramMbps)} Mbit/s of datagrams (${fixed(held)} of data) after the first 2 s (${fixed(p.slipstream.goodputMbps)} of data over the whole run); ${shares}`,
        met: heldDatagramMbps !== undefined && Math.abs(heldDatagramMbps - policy.targetMbps) <= 0.05 * policy.targetMbps,
      });
    }
  }
  return out;
}

function renderReport(
  info: ReturnType<typeof machineInfo>,
  proofs: ProofRow[],
  rows: TransferRow[],
  policies: PolicyRow[],
  profileText: string,
  elapsedS: number,
  notes: string[],
): string {
  const scenarioTable = markdownTable(
    [
      'link',
      'Slipstream Mbit/s',
      '% of rate × (1 − loss)',
      'steady: link use',
      'sent ÷ delivered (data)',
      'wire ÷ delivered',
      'HTTP fallback',
      'TCP CUBIC',
      'TCP BBR',
      'udx-native',
      '× fallback',
      '× CUBIC',
      '× BBR',
      '× udx',
      'ramp s',
      'ping ms',
      'loss measured',
    ],
    rows.map((r) => {
      const slip = r.flows.Slipstream;
      const s = r.scenario.link;
      return [
        r.scenario.name,
        goodputCell(slip),
        slip?.ok ? pct((100 * slip.goodputMbps!) / deliverable(s)) : '—',
        r.finalRateMbps === undefined ? '—' : pct((100 * r.finalRateMbps) / deliverable(s)),
        fixed(dataRatio(slip), 3),
        fixed(wireRatio(slip), 3),
        goodputCell(r.flows['HTTP fallback']),
        goodputCell(r.flows['TCP CUBIC']),
        goodputCell(r.flows['TCP BBR']),
        goodputCell(r.flows['udx-native']),
        ratioCell(slip, r.flows['HTTP fallback']),
        ratioCell(slip, r.flows['TCP CUBIC']),
        ratioCell(slip, r.flows['TCP BBR']),
        ratioCell(slip, r.flows['udx-native']),
        fixed(r.rampS, 2),
        r.ping.error ? 'FAILED' : fixed(r.ping.avgMs, 1),
        r.measuredLossPercent === undefined ? '—' : `${fixed(r.measuredLossPercent, 2)} %`,
      ];
    }),
  );
  const wireTable = markdownTable(
    ['link', 'flow', 'Mbit/s', 's', 'delivered', 'wire ÷ delivered', 'detail'],
    rows.flatMap((r) =>
      Object.values(r.flows)
        .filter((f): f is FlowResult => !!f)
        .map((f) => [
          r.scenario.name,
          f.flow,
          goodputCell(f),
          fixed(f.seconds),
          f.bytesDelivered !== undefined ? formatSize(Math.round(f.bytesDelivered / MiB) * MiB) : '—',
          fixed(wireRatio(f), 3),
          Object.entries(f.detail)
            .map(([k, v]) => `${k} ${typeof v === 'number' ? Math.round(v * 100) / 100 : v}`)
            .join(', ')
            .slice(0, 300),
        ]),
    ),
  );
  const policyTable = markdownTable(
    ['scenario', 'link', 'Slipstream policy', 'Slipstream Mbit/s', 'steady Mbit/s (after 2 s)', 'TCP CUBIC Mbit/s', 'Slipstream share', 'TCP share', 'queue drops', 'note'],
    policies.map((p) => {
      const l = p.scenario.link;
      return [
        p.scenario.name,
        `${rateName(l.rateMbps)}, ${l.rttMs} ms, ${l.lossPercent} %, queue ${l.queueMs} ms`,
        `${p.scenario.policy!.ratePolicy} (target ${p.scenario.policy!.targetMbps} Mbit/s)`,
        goodputCell(p.slipstream),
        fixed(p.steadyMbps),
        p.tcp ? goodputCell(p.tcp) : '—',
        p.slipstream.ok ? pct((100 * p.slipstream.goodputMbps!) / l.rateMbps, 0) : '—',
        p.tcp?.ok ? pct((100 * p.tcp.goodputMbps!) / l.rateMbps, 0) : '—',
        p.slipstream.counters ? String(p.slipstream.counters.up.droppedQueue) : '—',
        typeof p.slipstream.detail.note === 'string' ? p.slipstream.detail.note : '',
      ];
    }),
  );
  const targetRows = targets(rows, policies);
  const targetTable = markdownTable(
    ['target (issue 4)', 'scenario', 'measured', 'met?'],
    targetRows.map((t) => [t.target, t.scenario, t.measured, mark(t.met)]),
  );
  const met = targetRows.filter((t) => t.met === true).length;
  const measured = targetRows.filter((t) => t.met !== undefined).length;
  const queues = [...new Set([...rows, ...policies].map((r) => `${r.scenario.link.rttMs} ms RTT → ${r.scenario.link.queueMs} ms`))].join(', ');
  return [
    '# Slipstream WAN benchmark',
    '',
    `${info.date} · \`nproc\` ${info.nproc} (${info.cpu}) · Node ${info.node} · ${elapsedS > 0 ? `${fixed(elapsedS / 60)} min · ` : ''}` +
      `\`npm run bench:wan${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\``,
    '',
    `Each link is emulated by \`bench/wan/linkemu\` between two network namespaces (rate counts IP bytes; drop-tail queue ` +
      `${args.queueMs > 0 ? `${args.queueMs} ms` : `of one RTT, 20–100 ms: ${queues}`}; random loss applied after the queue, ` +
      `in both directions; half the RTT of delay each way). Per link, one after another over the same emulated link: Slipstream ` +
      `uploads ${args.seconds} s worth of the link rate (capped at ${formatSize(maxSize)}) into the local stack in the server namespace ` +
      `(policy \`fair\`, target = link rate; stopped after ${args.seconds * slipstreamDeadlineFactor} s), the HTTP fallback uploads the same bytes ` +
      `(multipart, presigned part URLs, ${args.fallbackConcurrency} parts at a time, TCP ${fallbackCc.toUpperCase()}; stopped after ${args.seconds + baselineExtraS} s), ` +
      `iperf3 runs TCP CUBIC and TCP BBR for ${args.seconds} s, and udx-native streams the same bytes (stopped after ${args.seconds + baselineExtraS} s).`,
    '',
    `Goodput (Mbit/s) is payload bytes delivered ÷ time (Slipstream: from the first hello to the object committed in S3, or the bytes the engine ` +
      `acknowledged when stopped; fallback: from creating the upload to completing it, or the bytes of parts S3 accepted when stopped; iperf3: its receiver's figure; ` +
      `udx: bytes the server read ÷ the client's time until the server ended the stream). \\* = stopped at its deadline. ` +
      `"sent ÷ delivered (data)" is Slipstream's data bytes on the link ÷ file bytes, from the emulator's counters: IP bytes the client sent minus 70 bytes per packet ` +
      `(IPv4 20, UDP 8, Slipstream header 17, AEAD tag 16, DATA frame 9). "wire ÷ delivered" is all IP bytes the client sent ÷ payload delivered. ` +
      `Ramp: from \`go\` until the delivered rate (300 ms windows, emulator counters sampled every 100 ms) first reaches 90 % of its median over 40–90 % of the run. ` +
      `"steady: link use" is that median (IP bytes of Slipstream's packets out of the link, headers included) ÷ what the link delivers, rate × (1 − loss): ` +
      `how full the controller keeps the link once running, without the handshake, the ramp and the S3 commit that the goodput includes. ` +
      `"loss measured" is the emulator's random drops ÷ draws over all flows of the link, both directions. With 1400-byte datagrams Slipstream's own ceiling is ` +
      `1358 ÷ 1428 = 95.1 % of the link rate (TCP's: 1448 ÷ 1500 = 96.5 %).`,
    '',
    ...notes.map((n) => `- ${n}`),
    ...(notes.length ? [''] : []),
    '## The emulator, proven in this run',
    '',
    proofs.length
      ? markdownTable(
          ['check', 'setting', 'measured', 'met?'],
          proofs.map((p) => [p.check, p.setting, p.measured, mark(p.met)]),
        )
      : '(skipped: --skip-prove)',
    '',
    '## Links',
    '',
    rows.length ? scenarioTable : '(none selected)',
    '',
    '## Policies next to TCP (200 Mbit/s, 50 ms, 0 %)',
    '',
    policies.length ? policyTable : '(none selected)',
    '',
    `## Targets (${met} of ${measured} measured met)`,
    '',
    targetTable,
    '',
    '## Every flow',
    '',
    rows.length ? wireTable : '(none)',
    ...(profileText ? ['', '## Where the time goes at 1 Gbit/s (CPU profiles of the Slipstream run)', '', profileText] : []),
  ].join('\n');
}

/** The congestion control of the fallback's TCP connections (the client namespace's default). */
let fallbackCc = 'unknown';

// ── Main ────────────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:wan needs root (network namespaces, TUN devices)');
  const started = performance.now();
  const scenarios = selected();
  await ensureTools();
  const info = machineInfo();
  log(`Slipstream WAN benchmark — ${info.date}, ${info.nproc} CPU (${info.cpu}), Node ${info.node}`);
  log(`scenarios: ${scenarios.map((s) => s.name).join(', ')}; --seconds ${args.seconds}`);

  const leftovers = await removeLeftovers();
  if (leftovers.length) log(`removed leftovers of an earlier run: ${leftovers.join(', ')}`);
  // Random data: one file per link rate, large enough for every run at that rate.
  const dataSizes = new Map<number, number>();
  for (const rateMbps of new Set(scenarios.map((s) => s.link.rateMbps))) {
    const seconds = scenarios.some((s) => s.kind === 'policy' && s.link.rateMbps === rateMbps) ? Math.max(args.seconds, args.policySeconds + 5) : args.seconds;
    dataSizes.set(rateMbps, bytesFor(rateMbps, seconds));
  }
  const dir = mkdtempSync(join(await benchTempRoot([...dataSizes.values()]), 'slipwan-bench-'));
  log(`temporary files, the data and the local S3's objects in ${dir}`);
  if (args.keepTemp) log(`keeping ${dir} (--keep-temp): logs of the stack and the engine`);
  else cleanup.add('temporary files', () => rmSync(dir, { recursive: true, force: true }));

  const files = new Map<number, string>();
  for (const [rateMbps, size] of dataSizes) {
    const path = join(dir, `data-${rateMbps}M.bin`);
    await writeRandomFile(path, size);
    files.set(rateMbps, path);
    log(`wrote ${formatSize(size)} of random bytes for ${rateName(rateMbps)}bit/s links`);
  }
  const fileFor = (rateMbps: number) => files.get(rateMbps)!;

  const first = scenarios[0]?.link ?? linkOf(200, 100, 0);
  const link = await startWanLink({ ...first, seed: args.seed }, cleanup);
  log(`link up: ${link.clientNs} ${link.clientIp} ⇄ linkemu (pid ${link.emulatorPid}, ${link.emulatorScheduling}) ⇄ ${link.serverNs} ${link.serverIp}`);
  const rmem = (await link.exec(link.clientNs, 'sysctl', ['-n', 'net.core.rmem_max'])).stdout.trim();
  if (args.fallbackCc !== 'default') {
    // The fallback's TCP (the only TCP here that does not name its congestion control) takes the client
    // namespace's default, and a namespace may only default to an algorithm the root namespace allows
    // for everyone: add it to the allowed list for the run, and put the list back afterwards.
    const allowed = (await run('sysctl', ['-n', 'net.ipv4.tcp_allowed_congestion_control'])).stdout.trim();
    if (!allowed.split(/\s+/).includes(args.fallbackCc)) {
      await run('sysctl', ['-qw', `net.ipv4.tcp_allowed_congestion_control=${allowed} ${args.fallbackCc}`]);
      cleanup.add('tcp_allowed_congestion_control', async () => void (await run('sysctl', ['-qw', `net.ipv4.tcp_allowed_congestion_control=${allowed}`])));
    }
    const set = await link.exec(link.clientNs, 'sysctl', ['-qw', `net.ipv4.tcp_congestion_control=${args.fallbackCc}`]);
    if (set.code !== 0) throw new Error(`--fallback-cc ${args.fallbackCc}: ${set.stderr.trim()}`);
  }
  fallbackCc = (await link.exec(link.clientNs, 'sysctl', ['-n', 'net.ipv4.tcp_congestion_control'])).stdout.trim();
  const notes = [
    `The emulator runs with ${link.emulatorScheduling} scheduling; the machine is shared, so compare flows within one link.`,
    `net.core.rmem_max/wmem_max in the namespaces: ${rmem} bytes (the kernel's value; not settable inside a namespace on this kernel), TCP buffers up to 64 MiB (net.ipv4.tcp_rmem/tcp_wmem set per namespace).`,
  ];

  const stackDir = join(dir, 'stack');
  const stackLog = join(dir, 'stack.log');
  const profileDir = join(dir, 'profiles');
  const wantProfile = args.profile !== 'never' && scenarios.some((s) => s.link.rateMbps >= 1000);
  if (wantProfile) mkdirSync(profileDir, { recursive: true });
  const startStack = async () => {
    // With the profiler preload in every process of the stack (idle until SIGUSR2), the engine can be profiled at 1 Gbit/s.
    const env = wantProfile ? { NODE_OPTIONS: profilerOptions(), SLIPSTREAM_BENCH_CPU_PROFILE_DIR: profileDir } : undefined;
    const stack = await startServerStack(link, stackDir, stackLog, env);
    log(`local stack up in ${link.serverNs}: API ${stack.publicApiUrl} (harness: ${stack.mgmtApiUrl})`);
    return stack;
  };
  let stack = await startStack();
  cleanup.add('local stack', () => stack.stop());

  const proofs: ProofRow[] = [];
  if (!args.skipProve) {
    log('\n▶ proving the emulator');
    proofs.push(...(await proveLink(link)));
  }

  const rows: TransferRow[] = [];
  const policies: PolicyRow[] = [];
  const profileLabels = new Map<number, string>();
  for (const scenario of scenarios) {
    const l = scenario.link;
    log(`\n▶ ${scenario.name}: ${rateName(l.rateMbps)}bit/s, RTT ${l.rttMs} ms, loss ${l.lossPercent} %, queue ${l.queueMs} ms`);
    if (!(await stack.engineHealthy())) {
      log('  the engine does not answer its health check: restarting the local stack');
      notes.push(`The engine stopped answering before ${scenario.name}; the local stack was restarted (see the stack log).`);
      await stack.stop();
      stack = await startStack();
    }
    if (scenario.kind === 'policy') {
      const row = await runPolicyScenario(link, stack, scenario, { tmpDir: dir, fileFor });
      policies.push(row);
      log(
        `  Slipstream ${scenario.policy!.ratePolicy}: ${goodputCell(row.slipstream)} Mbit/s (steady ${fixed(row.steadyMbps)})` +
          `${row.tcp ? `; TCP CUBIC ${goodputCell(row.tcp)} Mbit/s` : ''}`,
      );
    } else {
      const profile = wantProfile && l.rateMbps >= 1000;
      const stackPid = stack.pid;
      const row = await runTransferScenario(link, stack, scenario, { tmpDir: dir, fileFor, ...(profile ? { profileDir, stackPid } : {}) });
      if (row.profiled?.clientPid) profileLabels.set(row.profiled.clientPid, 'Client (SDK session runner, client namespace)');
      if (row.profiled?.enginePid) profileLabels.set(row.profiled.enginePid, 'Engine (from the Slipstream run until the benchmark ends: idle during the baselines)');
      rows.push(row);
      log(`  Slipstream ÷ baselines: fallback ${ratioCell(row.flows.Slipstream, row.flows['HTTP fallback'])}, CUBIC ${ratioCell(row.flows.Slipstream, row.flows['TCP CUBIC'])}, BBR ${ratioCell(row.flows.Slipstream, row.flows['TCP BBR'])}, udx ${ratioCell(row.flows.Slipstream, row.flows['udx-native'])}; measured loss ${fixed(row.measuredLossPercent, 3)} %`);
    }
  }

  // The engine writes its profile when it exits.
  await stack.stop();
  const profileText = wantProfile ? profileSummaries(profileDir, profileLabels) : '';
  const report = renderReport(info, proofs, rows, policies, profileText, (performance.now() - started) / 1000, notes);
  log(`\n${report}`);
  if (!args.noWrite) {
    writeFileSync(resolve(repoRoot, args.out), `${report}\n`);
    log(`\nwritten to ${args.out}`);
  }
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanup.run();
    const left = await removeLeftovers();
    if (left.length) console.error(`removed after cleanup: ${left.join(', ')}`);
  });

