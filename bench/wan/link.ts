/**
 * The emulated WAN: two network namespaces joined by `linkemu` (a C program compiled here with gcc),
 * which runs in the root namespace, creates two TUN devices, and forwards IP packets between them with
 * per-direction loss, one-way delay and a rate-limited drop-tail queue. After it created the devices
 * they are moved into the namespaces (the emulator's file descriptors stay attached):
 *
 *   slipwan-cli: slipwan-c 10.201.0.1/24 ──┐             ┌── slipwan-s 10.201.0.2/24 :slipwan-srv
 *                                           └─ linkemu ──┘    slipwan-m1 10.202.0.2/30 (management)
 *   root namespace: linkemu, the harness, slipwan-m0 10.202.0.1/30 ─── veth ───┘
 *
 * The management veth (not emulated) lets the harness reach the server namespace's API and S3 without
 * going through the WAN; the client namespace reaches the server only through the emulator.
 * Everything is named `slipwan-…`, and whatever a crashed run left behind is removed before a new one.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Cleanup } from '../lib';

export const namePrefix = 'slipwan-';
export const clientNs = 'slipwan-cli';
export const serverNs = 'slipwan-srv';
const clientTun = 'slipwan-c';
const serverTun = 'slipwan-s';
const mgmtRoot = 'slipwan-m0';
const mgmtServer = 'slipwan-m1';
export const clientIp = '10.201.0.1';
export const serverIp = '10.201.0.2';
const wanPrefixLength = 24;
const mgmtRootIp = '10.202.0.1';
export const serverMgmtIp = '10.202.0.2';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');
const emulatorSource = join(here, 'linkemu.c');
const buildDir = join(here, '.build');
const emulatorBinary = join(buildDir, 'linkemu');

/** Socket buffer limits asked for in each namespace (TCP autotuning needs > BDP: 1 Gbit/s × 300 ms ≈ 37 MB). */
const socketBufferMaxBytes = 64 * 1024 * 1024;
/** TUN transmit queue: the kernel drops beyond it if the emulator falls behind a burst. */
const tunTxQueuePackets = 10_000;
const commandTimeoutMs = 10_000;

export interface LinkSettings {
  rateMbps: number;
  rttMs: number;
  lossPercent: number;
  /** Drop-tail queue, in ms of transmission at the rate. */
  queueMs: number;
}

export interface WanLinkOptions extends LinkSettings {
  seed: number;
}

export interface DirectionCounters {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Packets that passed the queue and had a loss draw. */
  lossTrials: number;
  droppedLoss: number;
  bytesLost: number;
  droppedQueue: number;
  droppedRing: number;
  writeErrors: number;
  maxQueueUs: number;
  queuedPackets: number;
}

export interface LinkCounters {
  timeNs: number;
  /** Client → server (uploads). */
  up: DirectionCounters;
  /** Server → client. */
  down: DirectionCounters;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface WanLink {
  readonly clientNs: string;
  readonly serverNs: string;
  readonly clientIp: string;
  readonly serverIp: string;
  /** The server namespace's address on the management veth (reachable from the root namespace). */
  readonly serverMgmtIp: string;
  readonly settings: LinkSettings;
  readonly emulatorPid: number;
  /** How the emulator is scheduled: `SCHED_RR` (real-time, when allowed) or `nice -10`. */
  readonly emulatorScheduling: string;
  /** New link settings for both directions; packets already queued keep their release times. */
  configure(settings: LinkSettings): Promise<void>;
  counters(): Promise<LinkCounters>;
  resetCounters(): Promise<void>;
  /** Runs a command in a namespace to completion (killed after `timeoutMs`). */
  exec(ns: string, command: string, args: string[], options?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Starts a command in a namespace; it is stopped by `stop()` if still running. */
  spawn(ns: string, command: string, args: string[], options?: { stdio?: StdioOptions; logFile?: string; env?: NodeJS.ProcessEnv }): ChildProcess;
  stop(): Promise<void>;
}

// ── Commands ────────────────────────────────────────────────────────────────────────────────────────

/** Runs a command to completion; never rejects (the exit code says). */
export function run(command: string, args: string[], timeoutMs = 30_000): Promise<ExecResult> {
  return collect(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}

/** A child's exit code and the tail of its output (bounded); killed after `timeoutMs`; never rejects. */
function collect(child: ChildProcess, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout = (stdout + b.toString()).slice(-1_000_000)));
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-100_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}${error.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(command: string, args: string[]): Promise<string> {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.code}`}`);
  return result.stdout;
}

/** `node --import <tsx loader> <script>`: TypeScript children without npx (which would add a process). */
export function tsNodeCommand(script: string): { command: string; args: string[] } {
  const require = createRequire(import.meta.url);
  const loader = pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist/loader.mjs')).href;
  return { command: process.execPath, args: ['--import', loader, script] };
}

/** Compiles linkemu.c into bench/wan/.build/ when the binary is missing or older than the source. */
export async function buildLinkEmulator(): Promise<string> {
  if (existsSync(emulatorBinary) && statSync(emulatorBinary).mtimeMs >= statSync(emulatorSource).mtimeMs) return emulatorBinary;
  mkdirSync(buildDir, { recursive: true });
  await must('gcc', ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-o', emulatorBinary, emulatorSource]);
  return emulatorBinary;
}

// ── Leftovers ───────────────────────────────────────────────────────────────────────────────────────

async function namespacePids(ns: string): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', ns]);
  return out.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/** Kills every process still inside `ns` (all of them descend from what the harness started there). */
async function killNamespaceProcesses(ns: string): Promise<number> {
  const pids = await namespacePids(ns);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids.length;
}

/** Namespaces, devices and processes named `slipwan-…` from an earlier run; returns what it removed. */
export async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = (await run('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.startsWith(namePrefix));
  for (const ns of namespaces) {
    const killed = await killNamespaceProcesses(ns);
    await run('ip', ['netns', 'del', ns]);
    removed.push(`namespace ${ns}${killed ? ` (${killed} processes)` : ''}`);
  }
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter((name) => name.startsWith(namePrefix));
  for (const link of links) {
    await run('ip', ['link', 'del', link]);
    removed.push(`device ${link}`);
  }
  return removed;
}

// ── The emulator process ────────────────────────────────────────────────────────────────────────────

interface EmulatorMessage {
  type: 'ready' | 'ok' | 'error' | 'counters';
  id: number;
  detail?: string;
  timeNs?: number;
  a2b?: DirectionCounters;
  b2a?: DirectionCounters;
}

class Emulator {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (m: EmulatorMessage) => void; reject: (e: Error) => void }>();
  private exited: Error | undefined;
  readonly ready: Promise<void>;
  readonly exit: Promise<void>;
  lastCounters: EmulatorMessage | undefined;
  readyDetail = '';

  constructor(readonly child: ChildProcess) {
    let ready: () => void = () => undefined;
    let failed: (e: Error) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => ((ready = resolve), (failed = reject)));
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let message: EmulatorMessage;
      try {
        message = JSON.parse(line) as EmulatorMessage;
      } catch {
        return;
      }
      if (message.type === 'ready') {
        this.readyDetail = message.detail ?? '';
        ready();
      }
      if (message.type === 'counters') this.lastCounters = message;
      const waiter = this.pending.get(message.id);
      if (waiter && message.id !== 0) {
        this.pending.delete(message.id);
        if (message.type === 'error') waiter.reject(new Error(`linkemu: ${message.detail}`));
        else waiter.resolve(message);
      }
    });
    this.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exited = new Error(`linkemu exited (${signal ?? `code ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`);
        failed(this.exited);
        for (const waiter of this.pending.values()) waiter.reject(this.exited);
        this.pending.clear();
        resolve();
      }),
    );
  }

  command(verb: string, ...args: string[]): Promise<EmulatorMessage> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`linkemu: no answer to ${verb} within ${commandTimeoutMs} ms`));
      }, commandTimeoutMs);
      this.pending.set(id, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.stdin!.write(`${[verb, String(id), ...args].join(' ')}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.stdin!.end(); // EOF: the emulator prints its counters and exits
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exit;
    clearTimeout(timer);
  }
}

function settingArgs(s: LinkSettings): string[] {
  return [
    `rate_bps=${Math.round(s.rateMbps * 1e6)}`,
    `delay_us=${Math.round((s.rttMs * 1000) / 2)}`,
    `loss=${s.lossPercent / 100}`,
    `queue_us=${Math.round(s.queueMs * 1000)}`,
  ];
}

function validate(s: LinkSettings): void {
  if (!(s.rateMbps > 0 && s.rateMbps <= 10_000)) throw new Error(`rateMbps ${s.rateMbps}: 0 < rate ≤ 10000`);
  if (!(s.rttMs >= 0 && s.rttMs <= 2000)) throw new Error(`rttMs ${s.rttMs}: 0 ≤ RTT ≤ 2000`);
  if (!(s.lossPercent >= 0 && s.lossPercent < 100)) throw new Error(`lossPercent ${s.lossPercent}: 0 ≤ loss < 100`);
  if (!(s.queueMs > 0 && s.queueMs <= 2000)) throw new Error(`queueMs ${s.queueMs}: 0 < queue ≤ 2000`);
}

const toCounters = (m: EmulatorMessage): LinkCounters => ({ timeNs: m.timeNs ?? 0, up: m.a2b!, down: m.b2a! });

// ── The link ────────────────────────────────────────────────────────────────────────────────────────

/**
 * Builds the two namespaces and the emulator between them. Everything is removed by `stop()`, which
 * is also registered with `cleanup` (Ctrl-C, SIGTERM, a failure).
 */
export async function startWanLink(options: WanLinkOptions, cleanup: Cleanup): Promise<WanLink> {
  validate(options);
  const binary = await buildLinkEmulator();
  await removeLeftovers();

  const children = new Set<ChildProcess>();
  let emulator: Emulator | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await Promise.all([...children].map((child) => stopChild(child)));
      for (const ns of [clientNs, serverNs]) await killNamespaceProcesses(ns);
      await emulator?.stop();
      for (const ns of [clientNs, serverNs]) await run('ip', ['netns', 'del', ns]);
      await run('ip', ['link', 'del', mgmtRoot]);
    })());
  const unregister = cleanup.add('WAN link (namespaces, devices, processes)', stop);

  try {
    const child = spawn(binary, ['--tun-a', clientTun, '--tun-b', serverTun, '--seed', String(options.seed)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    emulator = new Emulator(child);
    await emulator.ready;
    await emulator.command('set', 'both', ...settingArgs(options));

    for (const ns of [clientNs, serverNs]) {
      await must('ip', ['netns', 'add', ns]);
      const sysctl = (key: string, value: string) => run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `${key}=${value}`]);
      await sysctl('net.ipv6.conf.all.disable_ipv6', '1');
      await sysctl('net.ipv6.conf.default.disable_ipv6', '1');
      await sysctl('net.ipv4.tcp_rmem', `4096 131072 ${socketBufferMaxBytes}`);
      await sysctl('net.ipv4.tcp_wmem', `4096 16384 ${socketBufferMaxBytes}`);
      // Read-only outside the root namespace on some kernels (then the machine's value applies; see README).
      await sysctl('net.core.rmem_max', String(socketBufferMaxBytes));
      await sysctl('net.core.wmem_max', String(socketBufferMaxBytes));
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const [ns, tun, ip] of [
      [clientNs, clientTun, clientIp],
      [serverNs, serverTun, serverIp],
    ] as const) {
      await must('ip', ['link', 'set', tun, 'netns', ns]);
      await must('ip', ['-n', ns, 'addr', 'add', `${ip}/${wanPrefixLength}`, 'dev', tun]);
      await must('ip', ['-n', ns, 'link', 'set', tun, 'up', 'txqueuelen', String(tunTxQueuePackets)]);
    }
    await must('ip', ['link', 'add', mgmtRoot, 'type', 'veth', 'peer', 'name', mgmtServer]);
    await must('ip', ['link', 'set', mgmtServer, 'netns', serverNs]);
    await must('ip', ['addr', 'add', `${mgmtRootIp}/30`, 'dev', mgmtRoot]);
    await must('ip', ['link', 'set', mgmtRoot, 'up']);
    await must('ip', ['-n', serverNs, 'addr', 'add', `${serverMgmtIp}/30`, 'dev', mgmtServer]);
    await must('ip', ['-n', serverNs, 'link', 'set', mgmtServer, 'up']);
  } catch (error) {
    await stop();
    unregister();
    throw error;
  }

  const emu = emulator;
  let settings: LinkSettings = { rateMbps: options.rateMbps, rttMs: options.rttMs, lossPercent: options.lossPercent, queueMs: options.queueMs };
  const track = (child: ChildProcess) => {
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  return {
    clientNs,
    serverNs,
    clientIp,
    serverIp,
    serverMgmtIp,
    get settings() {
      return settings;
    },
    emulatorPid: emu.child.pid!,
    emulatorScheduling: emu.readyDetail.split(', ')[1] ?? 'unknown',
    async configure(next) {
      validate(next);
      await emu.command('set', 'both', ...settingArgs(next));
      settings = { ...next };
    },
    async counters() {
      return toCounters(await emu.command('counters'));
    },
    async resetCounters() {
      await emu.command('reset');
    },
    exec(ns, command, args, execOptions = {}) {
      return collect(track(spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })), execOptions.timeoutMs ?? 120_000);
    },
    spawn(ns, command, args, spawnOptions = {}) {
      let stdio: StdioOptions = spawnOptions.stdio ?? ['ignore', 'pipe', 'pipe'];
      let fd: number | undefined;
      if (spawnOptions.logFile) {
        fd = openSync(spawnOptions.logFile, 'a');
        stdio = ['pipe', fd, fd];
      }
      const child = track(spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio, ...(spawnOptions.env ? { env: spawnOptions.env } : {}) }));
      if (fd !== undefined) closeSync(fd);
      return child;
    },
    async stop() {
      unregister();
      await stop();
    },
  };
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
