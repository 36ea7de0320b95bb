import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve as resolvePath } from 'node:path';
import { freePort } from '../../local/ports';

/**
 * A throwaway Ceph cluster with a RADOS Gateway (the S3 server with Object Lock, versioning and tagging)
 * for tests: one monitor, one memstore OSD (data in RAM) and radosgw, all child processes of this one,
 * all under a fresh temp dir with its own ceph.conf (nothing in /etc/ceph or /var/lib/ceph is touched).
 * See /work/shared/notes/ceph-rgw.md for the measurements behind the settings.
 */
export interface RgwServer {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  stop(): Promise<void>;
}

const REQUIRED_BINARIES = ['radosgw', 'ceph-mon', 'ceph-osd', 'ceph', 'radosgw-admin'] as const;
const START_TIMEOUT_MS = 60_000;
/** One-shot commands (mkfs, `ceph …`, `radosgw-admin …`) never get more than this. */
const COMMAND_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const DEFAULT_MEMSTORE_BYTES = 1024 * 1024 * 1024;
const MAX_PORT_ATTEMPTS = 3;
/** Set to 1 to keep the temp dir (ceph.conf, logs) after stop() or a failed start. */
const KEEP_ENV = 'SLIPSTREAM_RGW_KEEP';
const DIR_PREFIX = 'slipstream-rgw-';
/** The pid of the node process a dir belongs to, so a later run can remove the dirs of killed runs. */
const OWNER_FILE = 'owner.pid';

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True if radosgw, ceph-mon, ceph-osd, ceph and radosgw-admin are on PATH. */
export function rgwAvailable(): boolean {
  return REQUIRED_BINARIES.every((name) => which(name) !== undefined);
}

function tail(file: string, lines = 40): string {
  if (!existsSync(file)) return `(${file} does not exist)`;
  try {
    const text = readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '');
    return text.slice(-lines).join('\n').slice(-8000) || `(${file} is empty)`;
  } catch (error) {
    return `(cannot read ${file}: ${(error as Error).message})`;
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A daemon exited while the cluster was starting; `portInUse` if it was because its port was taken. */
class DaemonExited extends Error {
  override name = 'DaemonExited';
  constructor(
    readonly daemon: string,
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

interface Daemon {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  logs: string[];
}

/** Clusters whose processes must die with this process, even on process.exit() without stop(). */
const live = new Set<Cluster>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const cluster of live) cluster.killNow();
  });
}

class Cluster {
  readonly daemons: Daemon[] = [];
  readonly env: NodeJS.ProcessEnv;
  /** Aborted when a daemon dies during start, so a waiting `ceph …` command stops waiting for it. */
  private abort = new AbortController();
  private deathError: DaemonExited | undefined;
  private readonly deathWaiters = new Set<(error: DaemonExited) => void>();
  private stopped = false;
  private readonly setpriv = which('setpriv');

  constructor(
    readonly dir: string,
    readonly conf: string,
    readonly deadline: number,
  ) {
    const env = { ...process.env };
    delete env.CEPH_ARGS;
    delete env.CEPH_CONF;
    delete env.CEPH_KEYRING;
    this.env = env;
    live.add(this);
    installExitHook();
  }

  log(name: string): string {
    return join(this.dir, 'log', name);
  }

  remaining(what: string): number {
    const left = this.deadline - Date.now();
    if (left <= 0) throw new Error(`RGW test cluster: timed out (${START_TIMEOUT_MS / 1000} s) ${what}\n${this.tails(...this.daemons.flatMap((d) => d.logs))}`);
    return left;
  }

  tails(...files: string[]): string {
    return files.map((file) => `--- tail of ${file} ---\n${tail(file)}`).join('\n');
  }

  /**
   * Run with PR_SET_PDEATHSIG=SIGKILL (util-linux setpriv execs the command, so the pid is the daemon's):
   * the kernel kills the daemons even if this process dies by SIGKILL and its 'exit' handler never runs.
   */
  private argv(bin: string, args: string[]): [string, string[]] {
    return this.setpriv ? [this.setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
  }

  /** A long-running daemon in the foreground (`-f`), stdout and stderr to log/<name>.out. */
  spawnDaemon(name: string, bin: string, args: string[], logFile: string): Daemon {
    const outFile = this.log(`${name}.out`);
    const out = openSync(outFile, 'a');
    const [command, argv] = this.argv(bin, ['-c', this.conf, ...args, '-f']);
    let child: ChildProcess;
    try {
      child = spawn(command, argv, { cwd: this.dir, env: this.env, stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    const logs = [logFile, outFile];
    const exited = new Promise<void>((resolve) => {
      const died = (how: string) => {
        resolve();
        if (this.stopped) return;
        const text = logs.map((file) => tail(file, 200)).join('\n');
        const error = new DaemonExited(name, `RGW test cluster: ${name} ${how} while starting\n${this.tails(...logs)}`, /Address already in use/.test(text));
        if (!this.deathError) this.deathError = error;
        this.abort.abort(error);
        for (const waiter of this.deathWaiters) waiter(error);
      };
      child.once('error', (error) => died(`could not be started (${error.message})`));
      child.once('exit', (code, signal) => died(`exited (${signal ?? `code ${code}`})`));
    });
    const daemon: Daemon = { name, child, exited, logs };
    this.daemons.push(daemon);
    return daemon;
  }

  /** After a radosgw that lost its port race has exited, the cluster is healthy again. */
  forget(daemon: Daemon): void {
    this.daemons.splice(this.daemons.indexOf(daemon), 1);
    this.deathError = undefined;
    this.abort = new AbortController();
  }

  /** `step` unless a daemon dies first (then that daemon's exit, with its log tail). */
  async guard<T>(step: Promise<T>): Promise<T> {
    if (this.deathError) throw this.deathError;
    let waiter: ((error: DaemonExited) => void) | undefined;
    const died = new Promise<never>((_, reject) => {
      waiter = reject;
      this.deathWaiters.add(reject);
    });
    died.catch(() => undefined);
    try {
      return await Promise.race([step, died]);
    } finally {
      if (waiter) this.deathWaiters.delete(waiter);
    }
  }

  /** A one-shot command with `-c ceph.conf`, bounded by the start deadline and by the daemons' lives. */
  async run(bin: string, args: string[], what: string, logs: string[] = []): Promise<string> {
    const timeout = Math.min(COMMAND_TIMEOUT_MS, this.remaining(what));
    const [command, argv] = this.argv(bin, ['-c', this.conf, ...args]);
    const step = new Promise<string>((resolve, reject) => {
      execFile(
        command,
        argv,
        { cwd: this.dir, env: this.env, timeout, killSignal: 'SIGKILL', signal: this.abort.signal, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (!error) return resolve(stdout);
          if (this.deathError) return reject(this.deathError);
          const why = error.killed ? `timed out after ${timeout} ms` : `failed (${error.code ?? error.message})`;
          reject(
            new Error(
              `RGW test cluster: ${what}: \`${bin} ${args.join(' ')}\` ${why}\n--- stderr ---\n${stderr.slice(-4000)}\n--- stdout ---\n${stdout.slice(-2000)}\n${this.tails(...logs)}`,
            ),
          );
        },
      );
    });
    return this.guard(step);
  }

  /** Polls `check` every `intervalMs` until it returns true, a daemon dies or the deadline passes. */
  async until(what: string, logs: string[], intervalMs: number, check: () => Promise<boolean>): Promise<void> {
    for (;;) {
      if (this.deathError) throw this.deathError;
      if (Date.now() >= this.deadline) {
        throw new Error(`RGW test cluster: timed out (${START_TIMEOUT_MS / 1000} s) waiting for ${what}\n${this.tails(...logs)}`);
      }
      if (await this.guard(check())) return;
      await this.guard(sleep(intervalMs));
    }
  }

  /** SIGKILL everything now and remove the dir (synchronous: safe in a process 'exit' handler). */
  killNow(): void {
    this.stopped = true;
    for (const daemon of [...this.daemons].reverse()) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
    }
    live.delete(this);
    try {
      if (process.env[KEEP_ENV] === '1') rmSync(join(this.dir, OWNER_FILE), { force: true });
      else rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort at exit
    }
  }

  /** rgw, then osd, then mon (reverse start order); SIGKILL is fine for throwaway data in RAM. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const daemon of [...this.daemons].reverse()) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
      await Promise.race([daemon.exited, sleep(STOP_TIMEOUT_MS)]);
    }
    live.delete(this);
    // A kept dir loses its owner file so that the next run's sweep leaves it alone.
    await rm(process.env[KEEP_ENV] === '1' ? join(this.dir, OWNER_FILE) : this.dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/**
 * Removes the dirs of earlier runs whose node process is gone (killed with SIGKILL, so neither stop() nor
 * the 'exit' handler ran; its daemons died with it through the parent-death signal, but their dir stayed).
 */
function sweepOrphans(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent).filter((name) => name.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(parent, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), 'utf8'));
    } catch {
      continue; // not ours, or still being made
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
      continue; // its owner is alive
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

function cephConf(dir: string, fsid: string, monPort: number, memstoreBytes: number): string {
  // Admin sockets are unix sockets (≤ 107 bytes); without one the daemons run just the same.
  const adminSocket = join(dir, 'run', 'client.rgw.a.asok').length < 100 ? join(dir, 'run', '$name.asok') : '';
  return `# Throwaway test cluster made by test/support/rgw.ts
[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = ${join(dir, 'keyring')}
run dir = ${join(dir, 'run')}
admin socket = ${adminSocket}
log file = ${join(dir, 'log', '$name.log')}
crash dir = ${join(dir, 'crash')}
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd objectstore = memstore
memstore device bytes = ${memstoreBytes}
paxos propose interval = 0.1

[mon]
mon data = ${join(dir, 'mon', '$id')}
# The cluster and audit logs, otherwise in /var/log/ceph.
mon cluster log file = default=${join(dir, 'log', '$cluster.$channel.log')} cluster=${join(dir, 'log', '$cluster.log')}
mon data avail crit = 0
mon data avail warn = 0
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# A taken port fails at once (and we retry with another) instead of after 3 tries 5 s apart.
ms bind retry count = 1

[mon.a]
public addrv = v2:127.0.0.1:${monPort}

[osd]
osd data = ${join(dir, 'osd', '$id')}

[client.rgw.a]
rgw data = ${join(dir, 'rgw')}
# Without this radosgw hangs at start (get_initial_auth_request returned -13).
ms mon client mode = crc secure
`;
}

async function startOnce(
  dir: string,
  deadline: number,
  options: { port: number | undefined; memstoreBytes: number },
): Promise<{ cluster: Cluster; port: number }> {
  const bin = Object.fromEntries(
    REQUIRED_BINARIES.map((name) => {
      const path = which(name);
      if (!path) throw new Error(`RGW test cluster: ${name} is not on PATH (apt-get install ceph-mon ceph-osd radosgw ceph-common)`);
      return [name, path];
    }),
  ) as Record<(typeof REQUIRED_BINARIES)[number], string>;

  for (const sub of ['run', 'log', 'mon/a', 'osd/0', 'rgw', 'crash']) mkdirSync(join(dir, sub), { recursive: true });
  const conf = join(dir, 'ceph.conf');
  const monPort = await freePort();
  writeFileSync(conf, cephConf(dir, randomUUID(), monPort, options.memstoreBytes));
  const cluster = new Cluster(dir, conf, deadline);
  try {
    const monLog = cluster.log('mon.a.log');
    const osdLog = cluster.log('osd.0.log');
    const rgwLog = cluster.log('client.rgw.a.log');

    // Monitor: the monmap comes from `mon host` + `[mon.a] public addrv`.
    await cluster.run(bin['ceph-mon'], ['--mkfs', '-i', 'a'], 'ceph-mon --mkfs', [monLog]);
    cluster.spawnDaemon('mon', bin['ceph-mon'], ['-i', 'a'], monLog);

    // OSD: registered with the monitor (this also waits for the monitor to answer), then made and started.
    const osdUuid = randomUUID();
    const connectTimeout = () => String(Math.max(1, Math.ceil(Math.min(COMMAND_TIMEOUT_MS, cluster.remaining('for the monitor')) / 1000)));
    const osdId = (await cluster.run(bin.ceph, ['--connect-timeout', connectTimeout(), 'osd', 'new', osdUuid], 'ceph osd new', [monLog])).trim();
    if (osdId !== '0') throw new Error(`RGW test cluster: ceph osd new gave id ${JSON.stringify(osdId)}, expected 0`);
    await cluster.run(bin['ceph-osd'], ['-i', '0', '--mkfs', '--osd-uuid', osdUuid], 'ceph-osd --mkfs', [osdLog]);
    cluster.spawnDaemon('osd', bin['ceph-osd'], ['-i', '0'], osdLog);
    await cluster.until('osd.0 up in `ceph osd dump`', [osdLog, cluster.log('osd.out'), monLog], 100, async () => {
      const dump = JSON.parse(await cluster.run(bin.ceph, ['--connect-timeout', connectTimeout(), 'osd', 'dump', '-f', 'json'], 'ceph osd dump', [monLog])) as {
        osds?: { osd: number; up: number }[];
      };
      return dump.osds?.some((osd) => osd.osd === 0 && osd.up === 1) ?? false;
    });

    // radosgw: the port is on the command line so that a taken one can be retried without a new cluster.
    let port = options.port ?? (await freePort());
    if (!(await portFree(port))) {
      if (options.port !== undefined) throw new Error(`RGW test cluster: port ${port} on 127.0.0.1 is already in use`);
      port = await freePort();
    }
    for (let attempt = 1; ; attempt += 1) {
      const rgw = cluster.spawnDaemon('rgw', bin.radosgw, ['-n', 'client.rgw.a', '--rgw-frontends', `beast endpoint=127.0.0.1:${port}`], rgwLog);
      try {
        await cluster.until(`radosgw to answer HTTP on 127.0.0.1:${port}`, [rgwLog, cluster.log('rgw.out')], 100, async () => {
          try {
            const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
            const body = await response.text();
            // An anonymous GET / on RGW lists no buckets; anything else on the port is not our radosgw.
            return response.status === 200 && body.includes('ListAllMyBucketsResult');
          } catch {
            return false;
          }
        });
        break;
      } catch (error) {
        const retry = error instanceof DaemonExited && error.daemon === 'rgw' && error.portInUse && options.port === undefined && attempt < MAX_PORT_ATTEMPTS;
        if (!retry) throw error;
        await rgw.exited;
        cluster.forget(rgw);
        port = await freePort();
      }
    }
    return { cluster, port };
  } catch (error) {
    cluster.killNow();
    throw error;
  }
}

/**
 * Starts the throwaway cluster and radosgw, creates an S3 user with random keys and resolves when the
 * endpoint answers; rejects within 60 s with the tail of the log of whatever did not come up.
 * `dataDir`: the parent of the fresh temp dir (default os.tmpdir()); `port`: radosgw's port (default a
 * free one); `memstoreBytes`: the OSD's RAM-backed capacity (default 1 GiB, used only as data is stored).
 */
export async function startRgw(opts: { dataDir?: string; port?: number; memstoreBytes?: number } = {}): Promise<RgwServer> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  const parent = resolvePath(opts.dataDir ?? tmpdir());
  // ceph.conf holds paths as they are: these would end a value or be expanded.
  if (/[#;$\n\\]/.test(parent)) throw new Error(`RGW test cluster: ${parent} has a character ceph.conf cannot hold (# ; $ \\ or a newline); pass another dataDir`);
  mkdirSync(parent, { recursive: true });
  const memstoreBytes = opts.memstoreBytes ?? DEFAULT_MEMSTORE_BYTES;
  const port = opts.port === 0 ? undefined : opts.port;

  if (port !== undefined && !(await portFree(port))) throw new Error(`RGW test cluster: port ${port} on 127.0.0.1 is already in use`);
  sweepOrphans(parent);

  for (let attempt = 1; ; attempt += 1) {
    const dir = mkdtempSync(join(parent, DIR_PREFIX));
    writeFileSync(join(dir, OWNER_FILE), String(process.pid));
    let cluster: Cluster | undefined;
    try {
      const started = await startOnce(dir, deadline, { port, memstoreBytes });
      cluster = started.cluster;
      const accessKeyId = `SLIP${randomBytes(8).toString('hex').toUpperCase()}`;
      const secretAccessKey = randomBytes(20).toString('hex');
      await cluster.run(
        which('radosgw-admin')!,
        ['user', 'create', '--uid', 'slipstream', '--display-name', 'Slipstream tests', '--access-key', accessKeyId, '--secret', secretAccessKey],
        'radosgw-admin user create',
        [cluster.log('client.admin.log'), cluster.log('client.rgw.a.log')],
      );
      const running = cluster;
      let stopping: Promise<void> | undefined;
      return {
        endpoint: `http://127.0.0.1:${started.port}`,
        accessKeyId,
        secretAccessKey,
        region: 'us-east-1',
        stop: () => (stopping ??= running.stop()),
      };
    } catch (error) {
      cluster?.killNow();
      rmSync(process.env[KEEP_ENV] === '1' ? join(dir, OWNER_FILE) : dir, { recursive: true, force: true, maxRetries: 3 });
      // The monitor's port was taken between picking it and binding it: start over with another.
      if (error instanceof DaemonExited && error.daemon === 'mon' && error.portInUse && attempt < MAX_PORT_ATTEMPTS) continue;
      if (error instanceof Error) {
        error.message += process.env[KEEP_ENV] === '1' ? `\n(kept ${dir})` : `\n(set ${KEEP_ENV}=1 to keep the cluster's dir and logs)`;
      }
      throw error;
    }
  }
}
