/**
 * One measured flow over the emulated link each: Slipstream, the HTTP fallback, iperf3 (TCP CUBIC and
 * BBR), udx-native; plus ping and a UDP loss probe. Every flow resets the emulator's counters when it
 * starts, so its wire bytes (IP bytes the client put on the link, retransmissions and headers
 * included) come with it.
 */
import { type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { fixed, mbits, MiB, sessionEndStats, type RatePolicy } from '../lib';
import type { ChildMessage } from './child-io';
import { repoRoot, stopChild, tsNodeCommand, type ExecResult, type LinkCounters, type WanLink } from './link';
import { bucket, uploadSpec, type ServerStack } from './stack';

export type FlowName = 'Slipstream' | 'HTTP fallback' | 'TCP CUBIC' | 'TCP BBR' | 'udx-native';

export interface FlowResult {
  flow: FlowName;
  /** False: the flow failed outright (`error`); a flow stopped at its deadline is ok but `partial`. */
  ok: boolean;
  error?: string;
  partial: boolean;
  goodputMbps?: number;
  seconds?: number;
  bytesDelivered?: number;
  /** The link's counters over the flow (`up`: client → server). */
  counters?: LinkCounters;
  /** What else the flow reports (engine session stats, TCP retransmits, …). */
  detail: Record<string, number | string | boolean>;
  /** Delivered-byte samples for the ramp: ms since start, bytes through the link (client → server). */
  samples?: { ms: number; bytes: number }[];
}

const childGraceMs = 60_000;
let nextPort = 5301;
/** A fresh port per flow: a server from an earlier flow that is still closing never collides. */
const port = () => (nextPort = nextPort >= 5999 ? 5301 : nextPort + 1);

// ── A child process speaking the child-io.ts line protocol ──────────────────────────────────────────

class ChildFlow {
  readonly child: ChildProcess;
  readonly progress: ChildMessage[] = [];
  result: ChildMessage | undefined;
  error: string | undefined;
  private stderr = '';
  readonly ready: Promise<void>;
  readonly done: Promise<void>;

  constructor(link: WanLink, ns: string, script: string, args: string[], hardTimeoutMs: number, env?: NodeJS.ProcessEnv) {
    const { command, args: nodeArgs } = tsNodeCommand(join(repoRoot, 'bench', 'wan', script));
    this.child = link.spawn(ns, command, [...nodeArgs, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let ready: () => void = () => undefined;
    let notReady: (e: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => ((ready = resolve), (notReady = reject)));
    this.ready.catch(() => undefined);
    this.child.stderr!.on('data', (b: Buffer) => {
      if (process.env.SLIPSTREAM_TRACE) process.stderr.write(b);
      this.stderr = (this.stderr + b.toString()).slice(-4000);
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let message: ChildMessage;
      try {
        message = JSON.parse(line) as ChildMessage;
      } catch {
        return;
      }
      if (message.type === 'ready') ready();
      else if (message.type === 'progress' && this.progress.length < 100_000) this.progress.push(message);
      else if (message.type === 'result') this.result = message;
      else if (message.type === 'error') this.error = String(message.message);
    });
    const timer = setTimeout(() => {
      this.error ??= `killed after ${Math.round(hardTimeoutMs / 1000)} s`;
      this.child.kill('SIGKILL');
    }, hardTimeoutMs);
    this.done = new Promise((resolve) =>
      this.child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (!this.result && !this.error) this.error = `exited (${signal ?? `code ${code}`}) without a result: ${this.stderr.trim().split('\n').slice(-3).join(' / ')}`;
        notReady(new Error(this.error ?? 'exited'));
        resolve();
      }),
    );
  }

  go(): void {
    this.child.stdin!.write('go\n');
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 3000);
  }
}

const num = (m: ChildMessage | undefined, key: string): number | undefined => (typeof m?.[key] === 'number' ? (m[key] as number) : undefined);

/** Samples the link's delivered client → server bytes every `intervalMs` until `until` settles. */
async function sampleLink(link: WanLink, until: Promise<unknown>, intervalMs = 100): Promise<{ ms: number; bytes: number }[]> {
  const samples: { ms: number; bytes: number }[] = [];
  let done = false;
  void until.finally(() => (done = true));
  const t0 = performance.now();
  while (!done && samples.length < 36_000) {
    const counters = await link.counters().catch(() => undefined);
    if (counters) samples.push({ ms: performance.now() - t0, bytes: counters.up.bytesOut });
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return samples;
}

/** Waits until packets of an earlier flow have left the link (delay line and queue). */
export async function drain(link: WanLink): Promise<void> {
  const s = link.settings;
  await new Promise((resolve) => setTimeout(resolve, s.rttMs / 2 + s.queueMs + 300));
}

async function checkAndDelete(stack: ServerStack, key: string, expected: number): Promise<string | undefined> {
  try {
    const head = await stack.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    await stack.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    return head.ContentLength === expected ? undefined : `S3 holds ${head.ContentLength} bytes, expected ${expected}`;
  } catch (error) {
    return `S3 object ${key}: ${(error as Error).name}`;
  }
}

// ── Slipstream ──────────────────────────────────────────────────────────────────────────────────────

/** How long to wait for the engine's `session end` line after the client is done. */
const sessionEndWaitMs = 5000;
/** No acknowledged progress for this long before the deadline: the session stalled. */
const stallMs = 3000;

/** When the acknowledged bytes last grew, from the client's progress lines. */
function stalled(progress: ChildMessage[], endMs: number): { bytes: number; atMs: number; idleMs: number } | undefined {
  let bytes = -1;
  let atMs = 0;
  for (const p of progress) {
    const done = Number(p.bytesDone);
    if (done > bytes) {
      bytes = done;
      atMs = Number(p.elapsedMs);
    }
  }
  return bytes < 0 ? undefined : { bytes, atMs, idleMs: endMs - atMs };
}

export interface SlipstreamStart {
  flow: ChildFlow;
  transferId: string;
  key: string;
  size: number;
}

/** Sets up a Slipstream upload and its client process, up to `go` (so another flow can start with it). */
export async function prepareSlipstream(
  link: WanLink,
  stack: ServerStack,
  options: { label: string; file: string; size: number; ratePolicy: RatePolicy; targetRateKbps: number; deadlineS: number; tmpDir: string; env?: NodeJS.ProcessEnv },
): Promise<SlipstreamStart> {
  const root = `wan-${options.label}`;
  const spec = await uploadSpec(stack, { path: 'file.bin', size: options.size, destinationRoot: `/${root}`, ratePolicy: options.ratePolicy, targetRateKbps: options.targetRateKbps });
  if (spec.rate_policy !== options.ratePolicy) throw new Error(`the API gave rate_policy ${spec.rate_policy}, not ${options.ratePolicy}`);
  const specFile = join(options.tmpDir, `spec-${options.label}.json`);
  writeFileSync(specFile, JSON.stringify(spec));
  const flow = new ChildFlow(
    link,
    link.clientNs,
    'client.ts',
    ['slipstream', '--spec-file', specFile, '--path', 'file.bin', '--file', options.file, '--size', String(options.size), '--deadline-s', String(options.deadlineS)],
    options.deadlineS * 1000 + childGraceMs,
    options.env,
  );
  await flow.ready;
  return { flow, transferId: spec.slipstream.transfer_id, key: `${root}/file.bin`, size: options.size };
}

/** Waits for a started Slipstream flow and turns what it reported into a FlowResult. */
export async function finishSlipstream(stack: ServerStack, start: SlipstreamStart, counters?: LinkCounters): Promise<FlowResult> {
  await start.flow.done;
  const r = start.flow.result;
  // The engine logs the session's end once it has seen the close, which may come after the client exited.
  let stats = sessionEndStats(stack.engineLogFile, start.transferId);
  for (let waitedMs = 0; !stats && waitedMs < sessionEndWaitMs; waitedMs += 250) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    stats = sessionEndStats(stack.engineLogFile, start.transferId);
  }
  const detail: FlowResult['detail'] = {};
  if (stats) {
    for (const key of ['packetsReceived', 'bytesReceived', 'dataBytesDelivered', 'srttMs', 'minRttMs', 'durationMs', 'slowestStorageWaitMs', 'code', 'reason'] as const) {
      if (stats[key] !== undefined) detail[`engine.${key}`] = stats[key]!;
    }
  }
  if (!r) return { flow: 'Slipstream', ok: false, partial: false, error: start.flow.error ?? 'no result', detail, ...(counters ? { counters } : {}) };
  if (typeof r.note === 'string') detail.note = r.note;
  const status = String(r.status);
  const seconds = num(r, 'seconds')!;
  const bytes = num(r, 'bytesDone') ?? 0;
  const deadlineHit = r.deadlineHit === true;
  let error = status === 'COMPLETED' || (status === 'CANCELED' && deadlineHit) ? undefined : `${status}${r.error ? `: ${String(r.error)}` : ''}`;
  // A session that stopped moving long before its deadline did not run slowly: it stalled. Say so.
  const stall = deadlineHit ? stalled(start.flow.progress, seconds * 1000) : undefined;
  if (!error && stall && stall.idleMs >= stallMs) {
    error =
      `stalled: no progress for the last ${fixed(stall.idleMs / 1000)} s, at ${fixed(stall.bytes / MiB)} of ${fixed(start.size / MiB)} MiB ` +
      `(reached after ${fixed(stall.atMs / 1000)} s: ${fixed(mbits(stall.bytes, stall.atMs / 1000))} Mbit/s until then)`;
  }
  if (status === 'COMPLETED') error = await checkAndDelete(stack, start.key, start.size);
  return {
    flow: 'Slipstream',
    ok: error === undefined,
    ...(error ? { error } : {}),
    partial: status !== 'COMPLETED',
    goodputMbps: mbits(bytes, seconds),
    seconds,
    bytesDelivered: bytes,
    detail: { ...detail, status },
    ...(counters ? { counters } : {}),
  };
}

export async function runSlipstream(
  link: WanLink,
  stack: ServerStack,
  options: Parameters<typeof prepareSlipstream>[2] & { onStarted?: (start: SlipstreamStart) => void },
): Promise<FlowResult> {
  let start: SlipstreamStart;
  try {
    start = await prepareSlipstream(link, stack, options);
  } catch (error) {
    return { flow: 'Slipstream', ok: false, partial: false, error: (error as Error).message, detail: {} };
  }
  await link.resetCounters();
  start.flow.go();
  options.onStarted?.(start);
  const samples = sampleLink(link, start.flow.done);
  await start.flow.done;
  const counters = await link.counters();
  const result = await finishSlipstream(stack, start, counters);
  result.samples = await samples;
  return result;
}

// ── HTTP fallback ───────────────────────────────────────────────────────────────────────────────────

export async function runFallback(
  link: WanLink,
  stack: ServerStack,
  options: { label: string; file: string; size: number; concurrency: number; deadlineS: number },
): Promise<FlowResult> {
  const key = `wan-${options.label}/fallback.bin`;
  const flow = new ChildFlow(
    link,
    link.clientNs,
    'client.ts',
    [
      'fallback',
      '--api-url', stack.publicApiUrl,
      '--api-key', stack.apiKey,
      '--bucket', bucket,
      '--key', key,
      '--file', options.file,
      '--size', String(options.size),
      '--concurrency', String(options.concurrency),
      '--deadline-s', String(options.deadlineS),
    ],
    options.deadlineS * 1000 + childGraceMs,
  );
  try {
    await flow.ready;
  } catch {
    await flow.done;
    return { flow: 'HTTP fallback', ok: false, partial: false, error: flow.error ?? 'did not start', detail: {} };
  }
  await link.resetCounters();
  flow.go();
  await flow.done;
  const counters = await link.counters();
  const r = flow.result;
  if (!r) return { flow: 'HTTP fallback', ok: false, partial: false, error: flow.error ?? 'no result', detail: {}, counters };
  const seconds = num(r, 'seconds')!;
  const bytes = num(r, 'bytesDone') ?? 0;
  const completed = r.status === 'COMPLETED';
  const error = completed ? await checkAndDelete(stack, key, options.size) : undefined;
  return {
    flow: 'HTTP fallback',
    ok: error === undefined,
    ...(error ? { error } : {}),
    partial: !completed,
    goodputMbps: mbits(bytes, seconds),
    seconds,
    bytesDelivered: bytes,
    detail: { parts: num(r, 'partCount') ?? 0, partSizeBytes: num(r, 'partSizeBytes') ?? 0, concurrency: options.concurrency },
    counters,
  };
}

// ── iperf3 ──────────────────────────────────────────────────────────────────────────────────────────

interface IperfJson {
  error?: string;
  end?: {
    sum_sent?: { bytes: number; seconds: number; retransmits?: number };
    sum_received?: { bytes: number; seconds: number; bits_per_second: number };
    sum?: { lost_packets?: number; packets?: number };
  };
}

export interface IperfServer {
  process: ChildProcess;
  port: number;
}

/** An iperf3 server for one test in the server namespace, listening once this resolves. */
export async function startIperfServer(link: WanLink): Promise<IperfServer> {
  const p = port();
  const server = link.spawn(link.serverNs, 'iperf3', ['-s', '-1', '-B', link.serverIp, '-p', String(p)], { stdio: ['ignore', 'ignore', 'ignore'] });
  // iperf3 prints nothing useful before a test; half a second is plenty for it to listen.
  await new Promise((resolve) => setTimeout(resolve, 500));
  return { process: server, port: p };
}

/** The iperf3 client in the client namespace, run to completion. */
export function runIperfClient(link: WanLink, server: IperfServer, args: string[], durationS: number): Promise<ExecResult> {
  return link.exec(link.clientNs, 'iperf3', ['-c', link.serverIp, '-p', String(server.port), '-J', '--connect-timeout', '15000', ...args], {
    timeoutMs: (durationS + 90) * 1000,
  });
}

export async function iperfResult(flow: FlowName, server: IperfServer, out: ExecResult, counters?: LinkCounters): Promise<FlowResult> {
  await stopChild(server.process, 2000);
  const base = { flow, partial: false, detail: {}, ...(counters ? { counters } : {}) };
  let json: IperfJson;
  try {
    json = JSON.parse(out.stdout) as IperfJson;
  } catch {
    return { ...base, ok: false, error: `iperf3: ${(out.stderr || out.stdout).trim().slice(0, 200) || `exit ${out.code}`}` };
  }
  const received = json.end?.sum_received;
  if (json.error || !received) return { ...base, ok: false, error: `iperf3: ${json.error ?? 'no result'}` };
  return {
    ...base,
    ok: true,
    goodputMbps: received.bits_per_second / 1e6,
    seconds: received.seconds,
    bytesDelivered: received.bytes,
    detail: { retransmits: json.end?.sum_sent?.retransmits ?? 0 },
  };
}

/** `omitS`: leave the first seconds (slow start) out of iperf3's figures. */
export async function runIperfTcp(link: WanLink, cc: 'cubic' | 'bbr', durationS: number, omitS = 0): Promise<FlowResult> {
  const server = await startIperfServer(link);
  await link.resetCounters();
  const out = await runIperfClient(link, server, ['-C', cc, '-t', String(durationS), ...(omitS > 0 ? ['-O', String(omitS)] : [])], durationS + omitS);
  return iperfResult(cc === 'cubic' ? 'TCP CUBIC' : 'TCP BBR', server, out, await link.counters());
}

/** Paced UDP both ways at once (blast.ts in each namespace): many loss draws in a few seconds. */
export async function runBlast(link: WanLink, options: { pps: number; packetBytes: number; seconds: number }): Promise<{ error?: string; counters: LinkCounters }> {
  const p = port();
  const common = ['--port', String(p), '--pps', String(options.pps), '--bytes', String(options.packetBytes), '--seconds', String(options.seconds)];
  const hardMs = options.seconds * 1000 + childGraceMs;
  const flows = [
    new ChildFlow(link, link.clientNs, 'blast.ts', ['--bind', link.clientIp, '--peer-host', link.serverIp, ...common], hardMs),
    new ChildFlow(link, link.serverNs, 'blast.ts', ['--bind', link.serverIp, '--peer-host', link.clientIp, ...common], hardMs),
  ];
  try {
    await Promise.all(flows.map((f) => f.ready));
  } catch {
    await Promise.all(flows.map((f) => f.stop()));
  }
  await link.resetCounters();
  for (const f of flows) f.go();
  await Promise.all(flows.map((f) => f.done));
  await drain(link);
  const counters = await link.counters();
  const error = flows.map((f) => f.error).find((e) => e !== undefined);
  return { ...(error ? { error } : {}), counters };
}

// ── udx-native ──────────────────────────────────────────────────────────────────────────────────────

export async function runUdx(link: WanLink, options: { bytes: number; deadlineS: number }): Promise<FlowResult> {
  const serverPort = port();
  const clientPort = port();
  const common = (bind: string, own: number, peerHost: string, peer: number) => ['--bind', bind, '--port', String(own), '--peer-host', peerHost, '--peer-port', String(peer)];
  const server = new ChildFlow(link, link.serverNs, 'udx.ts', ['server', ...common(link.serverIp, serverPort, link.clientIp, clientPort)], options.deadlineS * 1000 + childGraceMs);
  const client = new ChildFlow(
    link,
    link.clientNs,
    'udx.ts',
    ['client', ...common(link.clientIp, clientPort, link.serverIp, serverPort), '--bytes', String(options.bytes), '--deadline-s', String(options.deadlineS)],
    options.deadlineS * 1000 + childGraceMs,
  );
  try {
    await Promise.all([server.ready, client.ready]);
  } catch {
    await Promise.all([server.stop(), client.stop()]);
    return { flow: 'udx-native', ok: false, partial: false, error: client.error ?? server.error ?? 'did not start', detail: {} };
  }
  await link.resetCounters();
  client.go();
  await client.done;
  const counters = await link.counters();
  // A completed stream has the server's result already; after a deadline it reports what it got on SIGTERM.
  if (!server.result) await new Promise((resolve) => setTimeout(resolve, 2000));
  await server.stop();
  await server.done;
  const seconds = num(client.result, 'seconds');
  const bytes = num(server.result, 'bytes');
  if (seconds === undefined || bytes === undefined) {
    const errors = [client.error ? `client: ${client.error}` : '', server.error ? `server: ${server.error}` : ''].filter(Boolean).join('; ');
    return { flow: 'udx-native', ok: false, partial: false, error: errors || 'no result', detail: {}, counters };
  }
  const completed = client.result?.completed === true;
  return { flow: 'udx-native', ok: true, partial: !completed, goodputMbps: mbits(bytes, seconds), seconds, bytesDelivered: bytes, detail: {}, counters };
}

// ── ping ────────────────────────────────────────────────────────────────────────────────────────────

export interface PingResult {
  avgMs?: number;
  minMs?: number;
  lossPercent?: number;
  error?: string;
}

export async function ping(link: WanLink, count = 20): Promise<PingResult> {
  const out = await link.exec(link.clientNs, 'ping', ['-n', '-q', '-c', String(count), '-i', '0.05', '-W', '3', link.serverIp], { timeoutMs: 30_000 });
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out.stdout);
  const loss = /([\d.]+)% packet loss/.exec(out.stdout);
  if (!rtt) return { error: `ping: ${(out.stderr || out.stdout).trim().slice(0, 200)}` };
  return { minMs: Number(rtt[1]), avgMs: Number(rtt[2]), ...(loss ? { lossPercent: Number(loss[1]) } : {}) };
}
