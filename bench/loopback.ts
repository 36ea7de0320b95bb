/**
 * npm run bench:loopback -- [--size 2GiB] [--quick] [--policies fixed,high] [--datagram-bytes 1400,9000]
 *                            [--memory-sizes 1GiB,8GiB] [--memory-sink auto|s3rver|null] [--memory-policy high]
 *                            [--profile auto|always|never]
 *
 * Everything on loopback, side by side in one run (the machine is shared and noisy, so compare the
 * ratios, not the absolute numbers): a Slipstream upload through the real engine process into s3rver, a
 * lib-storage multipart upload of the same file into the same s3rver, and a Slipstream upload into an
 * engine with the null sink (UDP + crypto + protocol, no storage), each Slipstream run with every rate
 * policy and datagram size asked for (1400 B is the SDK's default; 9000 B is its jumbo/loopback maximum). Every measured Slipstream upload gets a
 * fresh engine process, so its VmHWM is that upload's peak. Then the memory bound (engine peak RSS for a
 * small and a large file) and, when the null sink misses 1 Gbit/s at 1400-byte datagrams, CPU profiles of
 * engine and client.
 * Prints markdown tables and writes them to bench/RESULTS-loopback.md.
 */
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createS3Client } from '../core/clients';
import type { TransferSpec } from '../contracts';
import type { LocalStack } from '../local/stack';
import { formatSummary, profileThisProcess, readProfile, summarizeProfile } from './cpu-profile';
import {
  bucket,
  childPids,
  Cleanup,
  fixed,
  formatSize,
  freeDiskBytes,
  GiB,
  machineInfo,
  markdownTable,
  mbits,
  MiB,
  parseArgs,
  parseSize,
  processCpuSeconds,
  processMemory,
  runUpload,
  sessionEndStats,
  setUploadPreferences,
  startBenchEngine,
  startBenchStack,
  throttled,
  udpCounters,
  udpSocketDrops,
  uploadSpec,
  writeRandomFile,
  type RatePolicy,
} from './lib';

const usage = `npm run bench:loopback -- [--size 2GiB] [--quick] [--policies fixed,high] [--datagram-bytes 1400,9000]
                           [--memory-sizes 1GiB,8GiB] [--memory-sink auto|s3rver|null] [--memory-policy high] [--profile auto|always|never]
                           [--target-rate-kbps 10000000] [--targets s3rver,null] [--out bench/RESULTS-loopback.md] [--no-write]
  --targets null: only the null-sink runs (no lib-storage, no s3rver); --memory-sizes none skips the memory runs`;

const args = parseArgs(
  process.argv.slice(2),
  {
    size: '2GiB',
    quick: false,
    policies: 'fixed,high',
    datagramBytes: '1400,9000',
    memorySizes: '1GiB,8GiB',
    memorySink: 'auto',
    memoryPolicy: 'high',
    profile: 'auto',
    targetRateKbps: 10_000_000,
    targets: 's3rver,null',
    out: 'bench/RESULTS-loopback.md',
    noWrite: false,
  },
  usage,
);
if (args.quick) {
  if (!process.argv.some((a) => a.startsWith('--size'))) args.size = '256MiB';
  if (!process.argv.some((a) => a.startsWith('--memory-sizes'))) args.memorySizes = '128MiB,1GiB';
}
const size = parseSize(args.size);
const policies = args.policies.split(',').map((p) => p.trim()) as RatePolicy[];
const memorySizes = args.memorySizes === 'none' ? [] : args.memorySizes.split(',').map(parseSize);
const targets = args.targets.split(',').map((t) => (t.trim() === 'null' ? 'null sink' : t.trim())) as ('s3rver' | 'null sink')[];
const datagramSizes = String(args.datagramBytes).split(',').map((d) => Number(d.trim()));
/** The SDK's default datagram: the memory runs and the profile use it. */
const defaultDatagram = 1400;
const gib = (bytes: number) => bytes / GiB;
/** Data bytes in a full datagram: minus the 17-byte header, the 16-byte tag and the 9-byte DATA frame header. */
const dataPerDatagram = (datagramBytes: number) => datagramBytes - 17 - 16 - 9;

interface Row {
  run: string;
  target: 's3rver' | 'null sink';
  policy: string;
  /** UDP payload size the client sent (Slipstream runs). */
  datagramBytes?: number;
  size: number;
  ok: boolean;
  note: string;
  seconds: number;
  mbps: number;
  clientCpuPerGiB: number;
  engineCpuPerGiB?: number;
  s3rverCpuPerGiB?: number;
  enginePeakRssMiB?: number;
  engineDatagrams?: number;
  udpRcvbufDrops?: number;
  engineSocketDrops?: number;
  /** From the engine's `session end` log line: data bytes it received, and the session's length. */
  engineBytesReceived?: number;
  engineSessionSeconds?: number;
}

/** Engine-side rate: data bytes the engine received ÷ its session's length (valid even when a run ended early). */
const engineMbps = (r: Row) => (r.engineBytesReceived !== undefined && r.engineSessionSeconds ? mbits(r.engineBytesReceived, r.engineSessionSeconds) : undefined);
/** The null sink's measure: the client's rate for a complete run, else the engine-side rate. */
const nullSinkMbps = (r: Row) => (r.ok ? r.mbps : engineMbps(r));
function bestNullSink(rows: Row[]): Row | undefined {
  return rows
    .filter((r) => r.target === 'null sink' && nullSinkMbps(r) !== undefined)
    .reduce<Row | undefined>((best, r) => (!best || nullSinkMbps(r)! > nullSinkMbps(best)! ? r : best), undefined);
}

const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const log = (line: string) => console.log(line);

function s3rverPid(): number | undefined {
  return childPids(process.pid, 's3rver-server.ts')[0];
}

async function main(): Promise<void> {
  const info = machineInfo();
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-bench-'));
  cleanup.add('temporary files', () => rmSync(dir, { recursive: true, force: true }));
  log(`Slipstream loopback benchmark — ${info.date}, ${info.nproc} CPU (${info.cpu}), Node ${info.node}`);
  log(`file ${formatSize(size)}, policies ${policies.join(', ')}, datagrams ${datagramSizes.join(' / ')} B, memory sizes ${memorySizes.map(formatSize).join(' / ')}; temp ${dir}`);

  const stack = await startBenchStack(join(dir, 'stack'), cleanup);
  await setUploadPreferences(stack, args.targetRateKbps, 'fixed');
  const s3 = createS3Client(stack.config);
  cleanup.add('s3 client', () => s3.destroy());
  const s3rver = s3rverPid();

  const file = join(dir, 'file.bin');
  let t = performance.now();
  await writeRandomFile(file, size);
  log(`wrote ${formatSize(size)} of random bytes in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const rows: Row[] = [];
  const check = async (key: string, expected: number) => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if (head.ContentLength !== expected) throw new Error(`${key}: s3rver holds ${head.ContentLength} bytes, expected ${expected}`);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  };

  // 1. lib-storage into s3rver.
  if (targets.includes('s3rver')) {
    const key = 'bench-lib-storage/file.bin';
    log(`\n▶ lib-storage Upload → s3rver (8 MiB parts, 4 at a time)`);
    const s3rverCpu0 = s3rver ? processCpuSeconds(s3rver) : NaN;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let ok = true;
    let note = '';
    try {
      const progress = throttled(5000, log);
      const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: createReadStream(file, { highWaterMark: 8 * MiB }) }, partSize: 8 * MiB, queueSize: 4 });
      upload.on('httpUploadProgress', (p) => progress(`  ${formatSize(Math.floor((p.loaded ?? 0) / MiB) * MiB)} sent, ${fixed(mbits(p.loaded ?? 0, (performance.now() - t0) / 1000))} Mbit/s`));
      await upload.done();
    } catch (error) {
      ok = false;
      note = (error as Error).message;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (ok) await check(key, size).catch((e: Error) => ((ok = false), (note = e.message)));
    rows.push({
      run: 'lib-storage → s3rver',
      target: 's3rver',
      policy: '—',
      size,
      ok,
      note,
      seconds,
      mbps: mbits(size, seconds),
      clientCpuPerGiB: (cpu.user + cpu.system) / 1e6 / gib(size),
      ...(s3rver ? { s3rverCpuPerGiB: (processCpuSeconds(s3rver) - s3rverCpu0) / gib(size) } : {}),
    });
    log(summaryLine(rows.at(-1)!));
  }

  // 2. Slipstream into s3rver and into the null sink, each policy, each with a fresh engine.
  for (const target of targets) {
    for (const datagramBytes of datagramSizes) {
      for (const policy of policies) {
        rows.push(await slipstreamRun(stack, dir, { target, policy, datagramBytes, file, size, label: `Slipstream → ${target}`, s3rver, check }));
        log(summaryLine(rows.at(-1)!));
      }
    }
  }

  // 3. The memory bound: engine peak RSS for a small and a large upload, fresh engine each.
  const memoryRows: Row[] = [];
  const memoryTarget = await chooseMemoryTarget(dir, memorySizes);
  log(`\nmemory bound: ${memorySizes.map(formatSize).join(' and ')} into ${memoryTarget.target} (${memoryTarget.why}), policy ${args.memoryPolicy}`);
  for (const memorySize of memorySizes) {
    const memoryFile = memorySize === size ? file : join(dir, `memory-${memorySize}.bin`);
    if (memoryFile !== file) {
      t = performance.now();
      await writeRandomFile(memoryFile, memorySize);
      log(`wrote ${formatSize(memorySize)} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    memoryRows.push(
      await slipstreamRun(stack, dir, {
        target: memoryTarget.target,
        policy: args.memoryPolicy as RatePolicy,
        datagramBytes: defaultDatagram,
        file: memoryFile,
        size: memorySize,
        label: `memory ${formatSize(memorySize)}`,
        s3rver,
        check,
      }),
    );
    log(summaryLine(memoryRows.at(-1)!));
    if (memoryFile !== file) rmSync(memoryFile, { force: true });
  }

  // 4. Profiles, when the engine alone is far from 1 Gbit/s.
  const atDefault = rows.filter((r) => r.datagramBytes === defaultDatagram || r.datagramBytes === undefined);
  const bestNull = bestNullSink(atDefault);
  let profileText = '';
  // auto: whenever the engine alone misses 1 Gbit/s at the default datagram size.
  if (args.profile === 'always' || (args.profile === 'auto' && (!bestNull || nullSinkMbps(bestNull)! < 1000))) {
    // Profile a policy whose runs complete (a run that ends early profiles less than the whole transfer).
    const complete = atDefault.filter((r) => r.target === 'null sink' && r.ok).sort((a, b) => b.mbps - a.mbps)[0];
    profileText = await profileNullSink(stack, dir, file, Math.min(size, 1 * GiB), (complete?.policy ?? bestNull?.policy ?? policies[0]!) as RatePolicy);
  }

  // 5. Report.
  const report = renderReport(info, rows, memoryRows, memoryTarget, profileText);
  log(`\n${report}`);
  if (!args.noWrite) {
    writeFileSync(args.out, `${report}\n`);
    log(`\nwritten to ${args.out}`);
  }
}

const minimumDatagrams = (r: Row) => Math.ceil(r.size / dataPerDatagram(r.datagramBytes ?? defaultDatagram));

function summaryLine(r: Row): string {
  if (!r.ok) return `  ✗ ${r.run} (${r.policy}) FAILED: ${r.note}`;
  return (
    `  ✓ ${r.run} (${r.policy}${r.datagramBytes ? `, ${r.datagramBytes} B` : ''}): ${fixed(r.mbps)} Mbit/s in ${fixed(r.seconds)} s; CPU s/GiB client ${fixed(r.clientCpuPerGiB, 2)}` +
    `${r.engineCpuPerGiB !== undefined ? `, engine ${fixed(r.engineCpuPerGiB, 2)}` : ''}${r.s3rverCpuPerGiB !== undefined ? `, s3rver ${fixed(r.s3rverCpuPerGiB, 2)}` : ''}` +
    `${r.enginePeakRssMiB !== undefined ? `; engine peak RSS ${fixed(r.enginePeakRssMiB, 0)} MiB` : ''}` +
    `${r.engineDatagrams !== undefined ? `; engine got ${r.engineDatagrams} datagrams (${fixed(r.engineDatagrams / minimumDatagrams(r), 2)}× the minimum)` : ''}` +
    `${r.udpRcvbufDrops !== undefined ? `; UDP rcvbuf drops ${r.udpRcvbufDrops} (engine socket ${r.engineSocketDrops ?? '?'})` : ''}`
  );
}

async function slipstreamRun(
  stack: LocalStack,
  dir: string,
  options: {
    target: 's3rver' | 'null sink';
    policy: RatePolicy;
    datagramBytes: number;
    file: string;
    size: number;
    label: string;
    s3rver: number | undefined;
    check: (key: string, size: number) => Promise<void>;
  },
): Promise<Row> {
  const { target, policy, size, datagramBytes } = options;
  const nullSink = target === 'null sink';
  const name = `${target === 's3rver' ? 's3' : 'null'}-${policy}-${datagramBytes}-${size}`;
  log(`\n▶ ${options.label} (${policy}, ${datagramBytes}-byte datagrams, ${formatSize(size)})`);
  const engine = await startBenchEngine(stack, cleanup, { logFile: join(dir, `engine-${name}.log`), nullSink });
  const row: Row = { run: options.label, target, policy, datagramBytes, size, ok: false, note: '', seconds: NaN, mbps: NaN, clientCpuPerGiB: NaN };
  try {
    const spec: TransferSpec = await uploadSpec(stack, { key: 'file.bin', size, destinationRoot: `/bench-${name}`, ratePolicy: policy, targetRateKbps: args.targetRateKbps });
    if (spec.rate_policy !== policy) throw new Error(`the API gave rate_policy ${spec.rate_policy}, not ${policy}`);
    const engineCpu0 = processCpuSeconds(engine.pid);
    const s3rverCpu0 = options.s3rver && !nullSink ? processCpuSeconds(options.s3rver) : NaN;
    const udp0 = udpCounters();
    const progress = throttled(5000, log);
    const t0 = performance.now();
    const run = await runUpload({ ...spec, fasp_port: engine.port }, [{ index: 0, path: 'file.bin', size, localPath: options.file }], {
      datagramBytes,
      onProgress: (p) => progress(`  ${formatSize(Math.floor(p.bytesDone / MiB) * MiB)} acknowledged, ${fixed(mbits(p.bytesDone, (performance.now() - t0) / 1000))} Mbit/s average, rate ${fixed(p.rateKbps / 1000)} Mbit/s`),
    });
    const engineCpu = processCpuSeconds(engine.pid) - engineCpu0;
    const memory = processMemory(engine.pid);
    const udp1 = udpCounters();
    const health = await engine.health();
    Object.assign(row, {
      seconds: run.seconds,
      mbps: mbits(size, run.seconds),
      clientCpuPerGiB: run.clientCpuSeconds / gib(size),
      engineCpuPerGiB: engineCpu / gib(size),
      enginePeakRssMiB: memory.peakRssBytes / MiB,
      engineDatagrams: Number(health.body.datagramsReceived),
      udpRcvbufDrops: udp1.rcvbufErrors - udp0.rcvbufErrors,
      engineSocketDrops: udpSocketDrops(engine.port),
      ...(options.s3rver && !nullSink ? { s3rverCpuPerGiB: (processCpuSeconds(options.s3rver) - s3rverCpu0) / gib(size) } : {}),
    });
    if (run.result.status !== 'COMPLETED') {
      row.note = `${run.result.status}: ${run.result.error?.code ?? ''} ${run.result.error?.message ?? ''}`.trim();
    } else {
      row.ok = true;
      if (!nullSink) await options.check(`bench-${name}/file.bin`, size).catch((e: Error) => ((row.ok = false), (row.note = e.message)));
    }
    await engine.stop();
    const stats = sessionEndStats(engine.logFile, spec.slipstream.transfer_id);
    if (stats) {
      row.engineBytesReceived = Number(stats.dataBytesDelivered);
      row.engineSessionSeconds = Number(stats.durationMs) / 1000;
      if (row.ok && row.engineBytesReceived < size) {
        // The client was told "done" before the engine had the bytes (see NullSink.commitFile).
        row.ok = false;
        row.note = `INCOMPLETE: the client finished after the engine received ${formatSize(Math.floor(row.engineBytesReceived / MiB) * MiB)} of ${formatSize(size)}; engine-side rate ${fixed(mbits(row.engineBytesReceived, row.engineSessionSeconds))} Mbit/s`;
      }
    }
  } catch (error) {
    row.note = (error as Error).message;
    await engine.stop();
  }
  return row;
}

async function chooseMemoryTarget(dir: string, sizes: number[]): Promise<{ target: 's3rver' | 'null sink'; why: string }> {
  if (args.memorySink === 's3rver' || args.memorySink === 'null') {
    return { target: args.memorySink === 'null' ? 'null sink' : 's3rver', why: '--memory-sink' };
  }
  const largest = Math.max(...sizes);
  const free = await freeDiskBytes(dir);
  // The source file, s3rver's parts and the object it concatenates from them, and 10 % to spare.
  const needed = largest * 3 * 1.1;
  return free >= needed
    ? { target: 's3rver', why: `df: ${formatSize(Math.floor(free / GiB) * GiB)} free ≥ ${fixed(needed / GiB)} GiB needed` }
    : { target: 'null sink', why: `df: only ${fixed(free / GiB)} GiB free, ${fixed(needed / GiB)} GiB needed for s3rver` };
}

async function profileNullSink(stack: LocalStack, dir: string, file: string, size: number, policy: RatePolicy): Promise<string> {
  const profileDir = join(dir, 'profiles');
  mkdirSync(profileDir, { recursive: true });
  log(`\n▶ profiling: Slipstream → null sink (${policy}, ${formatSize(size)}), engine and client each with the V8 sampling profiler`);
  const engine = await startBenchEngine(stack, cleanup, { logFile: join(dir, 'engine-profile.log'), nullSink: true, cpuProfileDir: profileDir });
  try {
    const spec = await uploadSpec(stack, { key: 'file.bin', size, destinationRoot: '/bench-profile', ratePolicy: policy, targetRateKbps: args.targetRateKbps });
    engine.service.process.kill('SIGUSR2'); // the preload starts the engine's profiler
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { value: run, profile: clientProfile } = await profileThisProcess(() =>
      runUpload({ ...spec, fasp_port: engine.port }, [{ index: 0, path: 'file.bin', size, localPath: file }]),
    );
    await engine.stop(); // SIGTERM: the engine exits and writes its profile
    const engineFile = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
    const stats = sessionEndStats(engine.logFile, spec.slipstream.transfer_id);
    const received = Number(stats?.dataBytesDelivered ?? NaN);
    const rate =
      received < size
        ? `ended early: the engine received ${formatSize(Math.floor(received / MiB) * MiB)} at ${fixed(mbits(received, Number(stats!.durationMs) / 1000))} Mbit/s while profiled`
        : `${fixed(mbits(size, run.seconds))} Mbit/s (${run.result.status}) while profiled`;
    const parts = [`### CPU profiles: Slipstream → null sink, ${policy}, ${formatSize(size)}, ${rate}`, ''];
    parts.push(engineFile ? formatSummary('**Engine** (inspector profiler in the engine process, 0.5 ms sampling)', summarizeProfile(readProfile(join(profileDir, engineFile)))) : '(the engine wrote no profile)');
    parts.push('', formatSummary('**Client** (bench process: SDK session runner, via node:inspector)', summarizeProfile(clientProfile)));
    return parts.join('\n');
  } catch (error) {
    await engine.stop();
    return `(profiling failed: ${(error as Error).message})`;
  }
}

function renderReport(
  info: ReturnType<typeof machineInfo>,
  rows: Row[],
  memoryRows: Row[],
  memoryTarget: { target: string; why: string },
  profileText: string,
): string {
  const lib = rows.find((r) => r.run.startsWith('lib-storage') && r.ok);
  const mib = (v: number | undefined) => fixed(v, 0);
  const table = markdownTable(
    ['run', 'policy', 'datagram B', 'Mbit/s', 'engine-side Mbit/s', '× lib-storage', 'client CPU s/GiB', 'engine CPU s/GiB', 's3rver CPU s/GiB', 'engine peak RSS MiB', 'engine datagrams ÷ minimum', 'UDP rcvbuf drops', 'result'],
    rows.map((r) => [
      r.run,
      r.policy,
      r.datagramBytes ? String(r.datagramBytes) : '—',
      r.ok ? fixed(r.mbps) : '—',
      fixed(engineMbps(r)),
      r.ok && lib && !r.run.startsWith('lib-storage') ? `${fixed(r.mbps / lib.mbps, 2)}` : r.run.startsWith('lib-storage') ? '1.00' : '—',
      r.ok ? fixed(r.clientCpuPerGiB, 2) : '—',
      fixed(r.engineCpuPerGiB, 2),
      fixed(r.s3rverCpuPerGiB, 2),
      mib(r.enginePeakRssMiB),
      r.engineDatagrams !== undefined ? fixed(r.engineDatagrams / minimumDatagrams(r), 2) : '—',
      r.udpRcvbufDrops !== undefined ? String(r.udpRcvbufDrops) : '—',
      r.ok ? 'ok' : `FAILED: ${r.note}`,
    ]),
  );
  const cpuRatio = (r: Row) => (lib && r.ok ? `${fixed((r.clientCpuPerGiB + (r.engineCpuPerGiB ?? 0)) / lib.clientCpuPerGiB, 2)}` : '—');
  const ratioLines = rows
    .filter((r) => !r.run.startsWith('lib-storage') && r.ok && r.target === 's3rver' && lib)
    .map((r) => `- Slipstream (${r.policy}, ${r.datagramBytes}-byte datagrams) ÷ lib-storage into s3rver: throughput ${fixed(r.mbps / lib!.mbps, 2)}×, CPU per GiB (client + engine ÷ lib-storage client) ${cpuRatio(r)}×`);

  const [small, large] = memoryRows;
  const rssRatio = small?.ok && large?.ok && small.enginePeakRssMiB && large.enginePeakRssMiB ? large.enginePeakRssMiB / small.enginePeakRssMiB : undefined;
  const memoryTable = markdownTable(
    ['upload', 'into', 'policy', 'Mbit/s', 'engine CPU s/GiB', 'engine peak RSS (VmHWM) MiB', 'result'],
    memoryRows.map((r) => [formatSize(r.size), r.target, r.policy, r.ok ? fixed(r.mbps) : '—', fixed(r.engineCpuPerGiB, 2), mib(r.enginePeakRssMiB), r.ok ? 'ok' : `FAILED: ${r.note}`]),
  );

  const nullLabel = (r: Row) => `${r.policy} ${fixed(nullSinkMbps(r))}${r.ok ? '' : ' (engine-side: the run ended early)'}`;
  const goal2 = rssRatio !== undefined && Math.abs(rssRatio - 1) <= 0.2;
  const throughputGoals = datagramSizes.map((datagramBytes) => {
    const nullRows = rows.filter((r) => r.target === 'null sink' && r.datagramBytes === datagramBytes && nullSinkMbps(r) !== undefined);
    const best = bestNullSink(nullRows);
    return [
      `≥ 1 Gbit/s into the null sink with encryption on (AES-256-GCM, always on), ${datagramBytes}-byte datagrams${datagramBytes === defaultDatagram ? ' (the SDK default)' : ''}`,
      best ? `best ${fixed(nullSinkMbps(best))} Mbit/s; ${nullRows.map(nullLabel).join(', ')}` : 'no null-sink measurement',
      best && nullSinkMbps(best)! >= 1000 ? '**met**' : '**not met**',
    ];
  });
  const goals = markdownTable(
    ['goal', 'measured', 'met?'],
    [
      ...throughputGoals,
      [
        `engine peak RSS ${small ? formatSize(small.size) : '?'} vs ${large ? formatSize(large.size) : '?'} within ±20 %`,
        rssRatio !== undefined ? `${mib(small!.enginePeakRssMiB)} MiB vs ${mib(large!.enginePeakRssMiB)} MiB: ratio ${fixed(rssRatio, 2)} (${memoryTarget.target})` : 'not measured',
        rssRatio === undefined ? '—' : goal2 ? '**met**' : '**not met**',
      ],
    ],
  );

  return [
    `# Slipstream loopback benchmark`,
    '',
    `${info.date} · \`nproc\` ${info.nproc} (${info.cpu}) · Node ${info.node} · file ${formatSize(size)} of random bytes · ` +
      `target_rate_kbps ${args.targetRateKbps} · s3rver and dynalite as child processes, one fresh engine process per Slipstream run · ` +
      `\`npm run bench:loopback${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\``,
    '',
    `Throughput is file bytes ÷ wall time from the first packet (or request) to the object being committed. CPU is utime + stime ` +
      `(client: this process, via process.cpuUsage; engine and s3rver: /proc/<pid>/stat). "engine datagrams ÷ minimum" is what the ` +
      `engine received over ⌈size ÷ (datagram − 42 B)⌉, the fewest full datagrams that carry the file (retransmissions, ACK-only and control packets add to it). UDP rcvbuf drops: ` +
      `/proc/net/snmp RcvbufErrors during the run (whole machine).`,
    '',
    table,
    '',
    ...ratioLines,
    '',
    `## Memory bound (${memoryTarget.target}: ${memoryTarget.why})`,
    '',
    memoryTable,
    '',
    rssRatio !== undefined ? `Peak RSS ratio ${formatSize(large!.size)} ÷ ${formatSize(small!.size)}: **${fixed(rssRatio, 2)}**` : '',
    '',
    `## Goals`,
    '',
    goals,
    ...(profileText ? ['', profileText] : []),
  ].join('\n');
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanup.run());
