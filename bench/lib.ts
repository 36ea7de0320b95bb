/**
 * Shared pieces of the benchmarks: sizes and arguments, random files, the local stack on free ports,
 * extra engine processes, the API calls a transfer needs, /proc readings (CPU, peak RSS, UDP drops) and
 * cleanup that also runs on Ctrl-C or a failure.
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { open, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { TransferSpec } from '../contracts';
import { configToEnv } from '../core/config';
import type { SessionProgress, SessionResult, UploadFile } from '../client/sdk/session-types';
import { runUdpSession } from '../client/sdk/session';
import { freePort } from '../local/ports';
import { startEngine, type ManagedService } from '../local/services';
import { startLoopbackStack, type LocalStack } from '../local/stack';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

// ── Sizes, numbers, arguments ───────────────────────────────────────────────────────────────────────

/** `2GiB`, `512MiB`, `1.5G`, `100000` (bytes). Binary units whatever the spelling. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!match) throw new Error(`not a size: ${text} (try 2GiB, 512MiB)`);
  const unit = { '': 1, k: KiB, m: MiB, g: GiB, t: 1024 * GiB }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(match[1]) * unit);
}

export function formatSize(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes} B`;
}

export const mbits = (bytes: number, seconds: number) => (bytes * 8) / seconds / 1e6;
export const fixed = (value: number | undefined, digits = 1) => (value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));

/** `--name value` and `--flag` arguments; unknown ones are an error that lists the known ones. */
export function parseArgs<T extends Record<string, string | boolean | number>>(argv: string[], defaults: T, usage: string): T {
  const out: Record<string, string | boolean | number> = { ...defaults };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      console.log(usage);
      process.exit(0);
    }
    const [flag, inline] = arg.split('=', 2) as [string, string | undefined];
    const name = flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!flag.startsWith('--') || !(name in defaults)) throw new Error(`unknown argument ${arg}\n${usage}`);
    const current = defaults[name];
    if (typeof current === 'boolean') {
      // --flag, --flag=false, or --flag true|false
      let value = inline;
      if (value === undefined && (argv[i + 1] === 'true' || argv[i + 1] === 'false')) value = argv[++i];
      out[name] = value === undefined ? true : value !== 'false';
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value\n${usage}`);
    out[name] = typeof current === 'number' ? Number(value) : value;
    if (typeof current === 'number' && !Number.isFinite(out[name])) throw new Error(`${flag} takes a number`);
  }
  return out as T;
}

// ── Cleanup ─────────────────────────────────────────────────────────────────────────────────────────

/** Tasks run last-in first-out, once: at the end, on Ctrl-C/SIGTERM, or after an uncaught failure. */
export class Cleanup {
  private tasks: { name: string; run: () => Promise<void> | void }[] = [];
  private running: Promise<void> | undefined;

  add(name: string, run: () => Promise<void> | void): () => void {
    const task = { name, run };
    this.tasks.push(task);
    return () => {
      this.tasks = this.tasks.filter((t) => t !== task);
    };
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.tasks.length > 0) {
        const task = this.tasks.pop()!;
        try {
          await task.run();
        } catch (error) {
          console.error(`cleanup: ${task.name} failed: ${(error as Error).message}`);
        }
      }
    })();
    return this.running;
  }

  installSignalHandlers(): void {
    const onSignal = (signal: NodeJS.Signals) => {
      console.error(`\n${signal}: stopping engines and services, removing temporary files…`);
      void this.run().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.once('uncaughtException', (error) => {
      console.error('uncaught:', error);
      void this.run().finally(() => process.exit(1));
    });
  }
}

// ── Files and disk ──────────────────────────────────────────────────────────────────────────────────

/** Random bytes written in 8 MiB chunks (never the whole file in memory). */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  const handle = await open(path, 'w');
  try {
    const chunk = Buffer.allocUnsafe(8 * MiB);
    for (let at = 0; at < size; at += chunk.length) {
      const length = Math.min(chunk.length, size - at);
      randomFillSync(chunk, 0, length);
      await handle.write(chunk, 0, length, at);
    }
  } finally {
    await handle.close();
  }
}

export async function freeDiskBytes(path: string): Promise<number> {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
}

// ── /proc ───────────────────────────────────────────────────────────────────────────────────────────

let ticks: number | undefined;
/** `getconf CLK_TCK` (100 on Linux). */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** utime + stime of a process, in seconds (all its threads, this process only). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "pid (comm) ": state is field 3, utime field 14, stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** VmHWM (peak resident set over the process's lifetime) and VmRSS, in bytes. */
export function processMemory(pid: number): { peakRssBytes: number; rssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { peakRssBytes: kb('VmHWM'), rssBytes: kb('VmRSS') };
}

/** Direct children of `parent` whose command line contains `needle`. */
export function childPids(parent: number, needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** System-wide UDP counters from /proc/net/snmp (RcvbufErrors: datagrams dropped on a full receive buffer). */
export function udpCounters(): { inDatagrams: number; rcvbufErrors: number; inErrors: number } {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1).map(Number);
  const get = (name: string) => values[names.indexOf(name)] ?? NaN;
  return { inDatagrams: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors'), inErrors: get('InErrors') };
}

/** Datagrams the kernel dropped for the UDP socket bound to `port` (the `drops` column of /proc/net/udp). */
export function udpSocketDrops(port: number): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[1]?.endsWith(`:${hex}`)) return Number(cols[cols.length - 1]);
  }
  return undefined;
}

export function machineInfo(): { nproc: number; node: string; cpu: string; date: string } {
  let nproc = 0;
  try {
    nproc = Number(execFileSync('nproc').toString().trim());
  } catch {
    nproc = NaN;
  }
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  return { nproc, node: process.version, cpu, date: new Date().toISOString() };
}

// ── The stack, engines, the API ─────────────────────────────────────────────────────────────────────

export const bucket = 'local';

/** The local stack in `dataDir`, every port free; stopped by `cleanup`. */
export async function startBenchStack(dataDir: string, cleanup: Cleanup): Promise<LocalStack> {
  const stack = await startLoopbackStack(dataDir, { bucket });
  cleanup.add('local stack', () => stack.stop());
  return stack;
}

export interface BenchEngine {
  readonly service: ManagedService;
  readonly pid: number;
  readonly port: number;
  readonly healthPort: number;
  readonly logFile: string;
  health(): Promise<{ status: number; body: Record<string, unknown> }>;
  stop(): Promise<void>;
}

/**
 * A fresh engine process (its own VmHWM) with the stack's table, keys and S3: `nullSink` discards
 * uploaded bytes; `cpuProfileDir` makes it write a V8 CPU profile there when it exits (SIGTERM).
 */
export async function startBenchEngine(
  stack: LocalStack,
  cleanup: Cleanup,
  options: { logFile: string; nullSink?: boolean; cpuProfileDir?: string; env?: Record<string, string> },
): Promise<BenchEngine> {
  const port = await freePort();
  const healthPort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, ...configToEnv(stack.config), ...options.env };
  if (options.nullSink) env.SLIPSTREAM_ENGINE_NULL_SINK = 'true';
  if (options.cpuProfileDir) {
    // Node 20 refuses --cpu-prof in NODE_OPTIONS; a preload that runs the inspector's profiler does the same.
    const preload = new URL('./cpu-profile-preload.mjs', import.meta.url).href;
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim();
    env.SLIPSTREAM_BENCH_CPU_PROFILE_DIR = options.cpuProfileDir;
  }
  const service = await startEngine({ host: '127.0.0.1', port, healthPort, env, logFile: options.logFile });
  const remove = cleanup.add(`engine ${port}`, () => service.stop());
  return {
    service,
    pid: service.process.pid!,
    port,
    healthPort,
    logFile: options.logFile,
    async health() {
      const response = await fetch(`http://127.0.0.1:${healthPort}/health`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    },
    async stop() {
      remove();
      await service.stop();
    },
  };
}

/** The engine's `session end` log line for a transfer: its connection stats (drops, packets, bytes). */
export function sessionEndStats(logFile: string, transferId: string): Record<string, number | string | boolean> | undefined {
  let found: Record<string, number | string | boolean> | undefined;
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"session end"') || !line.includes(transferId)) continue;
    try {
      const entry = JSON.parse(line) as Record<string, number | string | boolean>;
      if (entry.transferId === transferId && entry.durationMs !== undefined) found = entry;
    } catch {
      // a partial line
    }
  }
  return found;
}

export async function callApi<T = unknown>(stack: LocalStack, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.credentials.apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export type RatePolicy = 'fixed' | 'high' | 'fair' | 'low';

/** Raises the bucket's upload cap and allows `ratePolicy` (and every gentler one) for new specs. */
export async function setUploadPreferences(stack: LocalStack, targetRateKbps: number, ratePolicy: RatePolicy): Promise<void> {
  await callApi(stack, 'PATCH', `/v1/buckets/${bucket}/preferences`, { upload: { targetRateKbps }, ratePolicy });
}

/** POST /files/upload_setup for one file: the spec the client runs. */
export async function uploadSpec(
  stack: LocalStack,
  options: { key: string; size: number; destinationRoot: string; ratePolicy?: RatePolicy; targetRateKbps?: number },
): Promise<TransferSpec> {
  const response = await callApi<{ transfer_specs: { transfer_spec?: TransferSpec; error?: unknown }[] }>(stack, 'POST', '/files/upload_setup', {
    transfer_requests: [
      {
        transfer_request: {
          paths: [{ source: options.key, size: options.size }],
          destination_root: options.destinationRoot,
          ...(options.ratePolicy ? { rate_policy: options.ratePolicy } : {}),
          ...(options.targetRateKbps ? { target_rate_kbps: options.targetRateKbps } : {}),
          slipstream: { bucket },
        },
      },
    ],
  });
  const entry = response.transfer_specs[0]!;
  if (!entry.transfer_spec) throw new Error(`upload_setup refused: ${JSON.stringify(entry.error)}`);
  return entry.transfer_spec;
}

export interface UploadRun {
  result: SessionResult;
  seconds: number;
  /** CPU of this process (user + system) during the transfer. */
  clientCpuSeconds: number;
  lastProgress: SessionProgress | undefined;
}

/** One upload over UDP with the SDK's session runner, timed from the first hello to the last commit. */
export async function runUpload(
  spec: TransferSpec,
  files: UploadFile[],
  options: { signal?: AbortSignal; onProgress?: (p: SessionProgress) => void; datagramBytes?: number } = {},
): Promise<UploadRun> {
  let lastProgress: SessionProgress | undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await runUdpSession(
    spec,
    { direction: 'upload', files, ...(options.datagramBytes ? { datagramBytes: options.datagramBytes } : {}) },
    {
      onProgress: (p) => {
        lastProgress = p;
        options.onProgress?.(p);
      },
      onStatus: () => undefined,
      attach: () => undefined,
      signal: options.signal ?? new AbortController().signal,
    },
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { result, seconds, clientCpuSeconds: (cpu.user + cpu.system) / 1e6, lastProgress };
}

/** Prints a line at most every `intervalMs` (progress on long runs). */
export function throttled(intervalMs: number, print: (line: string) => void): (line: string) => void {
  let last = 0;
  return (line) => {
    const now = performance.now();
    if (now - last < intervalMs) return;
    last = now;
    print(line);
  };
}

export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export const tempPath = (dir: string, name: string) => join(dir, name);
