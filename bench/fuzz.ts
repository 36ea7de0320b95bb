/**
 * npm run bench:fuzz -- [--count 100000] [--size 64MiB] [--seed N] [--rate auto] [--token-replays 300] [--hostile-peer]
 *
 * Hostile datagrams at the real engine process while honest uploads run. The honest client talks to the
 * engine through a UDP relay that forwards and keeps copies of real packets; a fuzzer process sends
 * `--count` datagrams straight to the engine's port from another socket: random bytes of random lengths,
 * bit flips, truncations and extensions of captured packets, exact replays, captured engine packets,
 * hellos with garbage, forged, unknown-key, expired and mutated tokens, malformed hellos, and short-header
 * packets with the live session's connection id but garbage. Honest uploads run back to back until the
 * fuzzer is done. Checks: every honest upload completes byte-exact (read back from s3rver), the engine
 * process is alive and /health answers (its counters printed), a fresh upload still works; reports drop
 * counters, datagrams/s sent and the honest rate with and without the fuzz load.
 *
 * Then probes that are reported, not pass/fail: `--token-replays N` replays of a live token under fresh
 * connection ids (does the session table fill up?), one client packet of a download copied and sent first
 * from another address (does the session follow it?), and `--hostile-peer` (an authenticated client that sends data beyond its
 * manifest: does the engine survive?).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createSocket } from 'node:dgram';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../core/clients';
import type { TransferSpec } from '../contracts';
import { connectionFor, runUdpSession } from '../client/sdk/session';
import { Keyring, type Ticket } from '../core/token';
import { addressKey, ConnectionDriver } from '../core/udp-driver';
import { connectionIdBytes, encodeClientHello, protocolVersion } from '../protocol/packet';
import { encodeControl } from '../protocol/transfer';
import { hostileTokens, UdpRelay, type SendStats } from './fuzz-lib';
import {
  bucket,
  callApi,
  Cleanup,
  fixed,
  formatSize,
  machineInfo,
  markdownTable,
  mbits,
  MiB,
  parseArgs,
  parseSize,
  processMemory,
  runUpload,
  sessionEndStats,
  startBenchEngine,
  startBenchStack,
  udpSocketDrops,
  uploadSpec,
  writeRandomFile,
  type BenchEngine,
  type UploadRun,
} from './lib';
import type { LocalStack } from '../local/stack';

const usage = `npm run bench:fuzz -- [--count 100000] [--size 64MiB] [--seed N]
                       [--rate auto (datagrams/s; auto: over ¾ of one honest upload; 0: as fast as possible)]
                       [--token-replays 300 (0: skip)] [--hostile-peer true|false]`;
const args = parseArgs(
  process.argv.slice(2),
  { count: 100_000, size: '64MiB', seed: Math.floor(Math.random() * 2 ** 31), rate: 'auto', tokenReplays: 300, hostilePeer: true },
  usage,
);
const size = parseSize(args.size);
const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const log = (line: string) => console.log(line);

interface Honest {
  label: string;
  spec: TransferSpec;
  run: UploadRun;
  key: string;
  fuzzed: boolean;
  byteExact?: boolean;
  /** performance.now() at the start and the end of the upload. */
  startMs: number;
  endMs: number;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function startSender(): ChildProcess {
  const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const entry = fileURLToPath(new URL('./fuzz-sender.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', loader, entry], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  cleanup.add('fuzz sender', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

async function main(): Promise<number> {
  const info = machineInfo();
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-fuzz-'));
  cleanup.add('temporary files', () => rmSync(dir, { recursive: true, force: true }));
  log(`Slipstream engine fuzz — ${info.date}, ${info.nproc} CPU, Node ${info.node}; seed ${args.seed}, ${args.count} datagrams, honest uploads of ${formatSize(size)}`);

  const stack = await startBenchStack(join(dir, 'stack'), cleanup);
  const engine = await startBenchEngine(stack, cleanup, { logFile: join(dir, 'engine.log') });
  const relay = new UdpRelay('127.0.0.1', engine.port);
  await relay.start();
  cleanup.add('relay', () => relay.close());
  const s3 = createS3Client(stack.config);
  cleanup.add('s3 client', () => s3.destroy());

  const file = join(dir, 'file.bin');
  await writeRandomFile(file, size);
  const fileSha = await sha256File(file);
  const honest: Honest[] = [];
  const upload = async (label: string, fuzzed: boolean, viaRelay = true, bytes = size, path = file): Promise<Honest> => {
    const root = `/fuzz-${honest.length}-${label.replace(/\W+/g, '-')}`;
    const spec = await uploadSpec(stack, { key: 'file.bin', size: bytes, destinationRoot: root });
    const startMs = performance.now();
    const run = await runUpload({ ...spec, fasp_port: viaRelay ? relay.port : engine.port }, [{ index: 0, path: 'file.bin', size: bytes, localPath: path }]);
    const entry = { label, spec, run, key: `${root.slice(1)}/file.bin`, fuzzed, startMs, endMs: performance.now() };
    log(`  ${label}: ${run.result.status}${run.result.error ? ` (${run.result.error.code}: ${run.result.error.message})` : ''} in ${fixed(run.seconds, 2)} s, ${fixed(mbits(bytes, run.seconds))} Mbit/s`);
    return entry;
  };

  // 1. Baseline: an honest upload through the relay with no fuzz load.
  log('\n▶ baseline: honest upload through the relay, no fuzz');
  honest.push(await upload('baseline', false));
  relay.reset(); // the fuzzer works on the sessions to come, not on the one that ended
  const healthBefore = await settledHealth(engine);
  const dropsBefore = udpSocketDrops(engine.port) ?? 0;

  // 2. Fuzz while honest uploads run back to back.
  const ticketFrom = (spec: TransferSpec): Ticket => ({
    transferId: spec.slipstream.transfer_id,
    bucket: spec.slipstream.bucket,
    keyPrefix: spec.slipstream.key_prefix,
    direction: 'send',
    maxRateKbps: spec.target_rate_cap_kbps,
    minRateKbps: spec.min_rate_kbps,
    ratePolicy: spec.rate_policy,
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    sessionSecret: spec.slipstream.session_secret,
  });
  const tokenKeys = stack.config.tokenKeys;
  if (tokenKeys?.source !== 'inline') throw new Error('the local stack has inline token keys');
  const keyring = Keyring.fromJson(tokenKeys.json);
  const keyJson = (id: string) => JSON.stringify({ currentKeyId: id, keys: { [id]: randomBytes(32).toString('base64') } });
  const tokens = hostileTokens(keyring, ticketFrom(honest[0]!.spec), Keyring.fromJson(keyJson(keyring.currentKeyId)), Keyring.fromJson(keyJson('fuzz-unknown-key')));

  // Spread the datagrams over about three quarters of one honest upload unless told otherwise, so the
  // first upload under fuzz is under it from start to end.
  const fuzzRate = args.rate === 'auto' ? Math.ceil(args.count / Math.max(0.5, 0.75 * honest[0]!.run.seconds)) : Number(args.rate);
  if (!Number.isFinite(fuzzRate) || fuzzRate < 0) throw new Error(`--rate takes auto or a number of datagrams/s`);
  log(`\n▶ fuzz: ${args.count} datagrams from another socket while honest uploads run (${fuzzRate > 0 ? `paced at ${fuzzRate}/s` : 'as fast as possible'})`);
  const fuzzWindow = { startMs: NaN, endMs: NaN };
  const tFuzz0 = performance.now();
  const sender = startSender();
  // The sender disconnects once it is done: a late message must not throw (EPIPE) or end the run.
  sender.on('error', () => undefined);
  const toSender = (message: unknown) => {
    if (!sender.connected) return;
    try {
      sender.send(message as object, () => undefined);
    } catch {
      // the channel closed in between
    }
  };
  let fuzzDone = false;
  let fuzzSent = 0;
  let lastVersion = -1;
  const feed = setInterval(() => {
    if (relay.version === lastVersion || fuzzDone) return;
    lastVersion = relay.version;
    toSender({ type: 'capture', capture: relay.sample(256) });
  }, 50);
  sender.once('disconnect', () => clearInterval(feed));
  cleanup.add('capture feed', () => clearInterval(feed));
  const fuzzResult = new Promise<SendStats>((resolve, reject) => {
    sender.on('message', (message: { type: string; sent?: number; stats?: SendStats; error?: string }) => {
      if (message.type === 'progress') fuzzSent = message.sent!;
      if (message.type === 'done') {
        fuzzDone = true;
        fuzzSent = message.stats!.sent;
        fuzzWindow.endMs = fuzzWindow.startMs + message.stats!.seconds * 1000;
        resolve(message.stats!);
      }
      if (message.type === 'failed') reject(new Error(message.error));
    });
    sender.once('exit', (code) => {
      if (!fuzzDone) reject(new Error(`the fuzz sender exited with ${code} after ${fuzzSent} datagrams`));
    });
  });
  fuzzResult.catch(() => undefined);

  const honestLoop = (async () => {
    let n = 0;
    do {
      n += 1;
      const running = upload(`under fuzz #${n}`, true);
      if (n === 1) {
        // Start the fuzzer once the first session carries data, so there are packets to mutate.
        const t0 = performance.now();
        while (relay.capture.serverConnectionIds.length === 0 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
        while (relay.capture.toEngine.length < 64 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
        toSender({ type: 'capture', capture: relay.sample(256) });
        toSender({ type: 'start', host: '127.0.0.1', port: engine.port, count: args.count, seed: args.seed, ratePerSecond: fuzzRate, tokens });
        fuzzWindow.startMs = performance.now() - tFuzz0;
      }
      honest.push(await running);
    } while (!fuzzDone && sender.exitCode === null);
  })();
  const progress = setInterval(() => log(`  … ${fuzzSent} datagrams sent`), 2000);
  cleanup.add('progress', () => clearInterval(progress));
  const [stats] = await Promise.all([fuzzResult, honestLoop]);
  clearInterval(progress);
  clearInterval(feed);

  // 3. Checks.
  const alive = engine.service.process.exitCode === null && engine.service.process.signalCode === null;
  const healthAfter = alive ? await settledHealth(engine) : { status: 0, body: { error: 'the engine process exited' } as Record<string, unknown> };
  const dropsAfter = udpSocketDrops(engine.port) ?? 0;
  for (const h of honest) {
    if (h.run.result.status !== 'COMPLETED') {
      h.byteExact = false;
      continue;
    }
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: h.key }));
    const hash = createHash('sha256');
    for await (const chunk of object.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
    h.byteExact = hash.digest('hex') === fileSha;
  }
  log('\n▶ after the fuzz: a fresh 1 MiB upload straight to the engine');
  const smallFile = join(dir, 'small.bin');
  await writeRandomFile(smallFile, MiB);
  const fresh = await upload('fresh after fuzz', false, false, MiB, smallFile);

  const memory = alive ? processMemory(engine.pid) : undefined;
  const sessionStats = honest.map((h) => sessionEndStats(engine.logFile, h.spec.slipstream.transfer_id));
  const engineLog = readFileSync(engine.logFile, 'utf8');
  const refusedLines = engineLog.split('\n').filter((l) => l.includes('"hello refused"')).length;

  // 4. Report.
  const fuzzedRuns = honest.filter((h) => h.fuzzed);
  const baseline = honest[0]!;
  const rate = (h: Honest) => mbits(size, h.run.seconds);
  /** Share of an upload's time during which the fuzzer was sending. */
  const overlap = (h: Honest) => {
    const start = tFuzz0 + fuzzWindow.startMs;
    const end = tFuzz0 + fuzzWindow.endMs;
    return Math.max(0, Math.min(h.endMs, end) - Math.max(h.startMs, start)) / Math.max(1, h.endMs - h.startMs);
  };
  // "Under fuzz" counts only uploads the fuzzer overlapped for most of their time.
  const underFuzz = fuzzedRuns.filter((h) => overlap(h) >= 0.5);
  const avgFuzzed = underFuzz.reduce((a, h) => a + rate(h), 0) / Math.max(1, underFuzz.length);
  const sum = (key: string) => sessionStats.reduce((a, s) => a + Number(s?.[key] ?? 0), 0);
  const okUploads = honest.every((h) => h.run.result.status === 'COMPLETED' && h.byteExact);
  const ok = okUploads && alive && healthAfter.status === 200 && stats.sent >= args.count && fresh.run.result.status === 'COMPLETED';

  const uploadsTable = markdownTable(
    ['honest upload', 'time under fuzz', 'status', 'Mbit/s', 'byte-exact', 'engine: packets received', 'forged dropped', 'replayed dropped', 'malformed dropped'],
    honest.map((h, i) => [
      h.label,
      h.fuzzed ? `${fixed(overlap(h) * 100, 0)} %` : '—',
      h.run.result.status,
      fixed(rate(h)),
      h.byteExact ? 'yes' : '**NO**',
      String(sessionStats[i]?.packetsReceived ?? '—'),
      String(sessionStats[i]?.droppedForged ?? '—'),
      String(sessionStats[i]?.droppedReplayed ?? '—'),
      String(sessionStats[i]?.droppedMalformed ?? '—'),
    ]),
  );
  const counters = (body: Record<string, unknown>) => ['status', 'sessions', 'datagramsReceived', 'hellosRefused', 'unknownConnection', 'sessionsStarted', 'sessionsEnded'].map((k) => String(body[k] ?? '—'));
  const healthTable = markdownTable(
    ['/health', 'HTTP', 'status', 'sessions', 'datagramsReceived', 'hellosRefused', 'unknownConnection', 'sessionsStarted', 'sessionsEnded'],
    [
      ['before the fuzz', String(healthBefore.status), ...counters(healthBefore.body)],
      ['after the fuzz', String(healthAfter.status), ...counters(healthAfter.body)],
    ],
  );
  const delta = (k: string) => Number(healthAfter.body[k] ?? 0) - Number(healthBefore.body[k] ?? 0);
  const categoriesTable = markdownTable(
    ['category', 'sent'],
    Object.entries(stats.counts)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => [c, String(n)]),
  );

  log(`\n## Engine fuzz: ${stats.sent} datagrams at ${fixed(stats.perSecond, 0)} datagrams/s (${fixed((stats.bytesSent * 8) / stats.seconds / 1e6)} Mbit/s), seed ${args.seed}\n`);
  log(uploadsTable);
  log(
    `\nHonest rate: ${fixed(rate(baseline))} Mbit/s without fuzz load, ${fixed(avgFuzzed)} Mbit/s on average under it ` +
      `(uploads under fuzz for at least half their time: ${underFuzz.length}; ratio ${fixed(avgFuzzed / rate(baseline), 2)}). ` +
      `The fuzzer sent from ${fixed(fuzzWindow.startMs / 1000, 2)} s to ${fixed(fuzzWindow.endMs / 1000, 2)} s after the first upload under fuzz began.`,
  );
  log(`\n${healthTable}`);
  log(
    `\nDuring the fuzz (deltas): datagrams received ${delta('datagramsReceived')}, hellos refused ${delta('hellosRefused')}, ` +
      `unknown connection ${delta('unknownConnection')}, sessions started ${delta('sessionsStarted')} (honest: ${fuzzedRuns.length + 1} incl. the fresh upload). ` +
      `Honest sessions dropped ${sum('droppedForged')} forged, ${sum('droppedReplayed')} replayed, ${sum('droppedMalformed')} malformed packets in all. ` +
      `Kernel drops on the engine's socket (receive buffer full): ${dropsAfter - dropsBefore}. ` +
      `Engine answers to the fuzzer's socket: ${stats.replies} datagrams, ${stats.replyBytes} bytes (it sent ${stats.bytesSent}). ` +
      `"hello refused" log lines: ${refusedLines}. Engine RSS now ${memory ? fixed(memory.rssBytes / MiB, 0) : '—'} MiB (peak ${memory ? fixed(memory.peakRssBytes / MiB, 0) : '—'} MiB).`,
  );
  log(`\n${categoriesTable}`);
  log(
    `\nChecks: honest uploads completed byte-exact: ${okUploads ? 'yes' : 'NO'}; engine process alive: ${alive ? 'yes' : 'NO'}; ` +
      `/health: ${healthAfter.status}; fresh upload after the fuzz: ${fresh.run.result.status}; datagrams sent ≥ ${args.count}: ${stats.sent >= args.count ? 'yes' : 'NO'} → ${ok ? 'PASS' : 'FAIL'}`,
  );

  // 5. Probes (reported, not pass/fail).
  if (args.tokenReplays > 0 && alive) await tokenReplayProbe(stack, engine, dir, args.tokenReplays);
  if (alive) await migrationProbe(stack, engine, relay, dir);
  if (args.hostilePeer) await hostilePeerProbe(stack, dir);
  return ok ? 0 : 1;
}

/**
 * An on-path attacker who copies one client packet and gets it to the engine first from another address:
 * the packet is authentic and the newest, so the session follows it (no path validation) and the engine
 * sends to the attacker's address until the client's next packet moves it back. In a download the engine
 * is the data sender, so what goes astray is data: one ~60-byte ACK copied, kilobytes reflected.
 */
async function migrationProbe(stack: LocalStack, engine: BenchEngine, relay: UdpRelay, dir: string): Promise<void> {
  log('\n▶ probe: during a download, one client packet is copied by the relay and sent from another address first');
  const file = join(dir, 'migration.bin');
  await writeRandomFile(file, 16 * MiB);
  const up = await uploadSpec(stack, { key: 'file.bin', size: 16 * MiB, destinationRoot: '/fuzz-migration' });
  const uploaded = await runUpload({ ...up, fasp_port: engine.port }, [{ index: 0, path: 'file.bin', size: 16 * MiB, localPath: file }]);
  if (uploaded.result.status !== 'COMPLETED') {
    log(`  (skipped: the upload for it ${uploaded.result.status})`);
    return;
  }
  const socket = createSocket('udp4');
  let replies = 0;
  let replyBytes = 0;
  let copiedBytes = 0;
  socket.on('message', (b) => ((replies += 1), (replyBytes += b.length)));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  let seen = 0;
  relay.withhold = (bytes) => {
    if (copiedBytes > 0 || (bytes[0]! & 0xf0) !== 0x40 || (seen += 1) < 100) return false;
    copiedBytes = bytes.length;
    socket.send(bytes, engine.port, '127.0.0.1'); // the copy, from the attacker's address
    relay.withhold = undefined;
    return false; // and the original goes on, right behind it
  };
  const { transfer_specs } = await callApi<{ transfer_specs: { transfer_spec: TransferSpec }[] }>(stack, 'POST', '/files/download_setup', {
    transfer_requests: [{ transfer_request: { paths: [{ source: 'fuzz-migration/file.bin' }], slipstream: { bucket } } }],
  });
  const out = join(dir, 'migration-out');
  const t0 = performance.now();
  const result = await runUdpSession(
    { ...transfer_specs[0]!.transfer_spec, fasp_port: relay.port },
    { direction: 'download', paths: ['fuzz-migration/file.bin'], localRoot: out },
    { onProgress: () => undefined, onStatus: () => undefined, attach: () => undefined, signal: new AbortController().signal },
  );
  const seconds = (performance.now() - t0) / 1000;
  relay.withhold = undefined;
  await new Promise((r) => setTimeout(r, 200));
  socket.close();
  const intact = result.status === 'COMPLETED' && readFileSync(join(out, 'fuzz-migration/file.bin')).equals(readFileSync(file));
  log(
    `  for one copied ${copiedBytes}-byte packet the engine sent ${replies} datagram(s), ${replyBytes} bytes, to the other address` +
      `${replies > 0 ? ` (×${fixed(replyBytes / Math.max(1, copiedBytes), 0)}): the session followed the copy, with no path validation` : ': none, the copy was ignored'}; ` +
      `the honest download: ${result.status}${intact ? ', byte-exact' : ''} in ${fixed(seconds, 2)} s`,
  );
}

/** /health once the sessions that just finished have closed on the engine's side too (a few PTOs), at most 5 s. */
async function settledHealth(engine: BenchEngine): Promise<{ status: number; body: Record<string, unknown> }> {
  let health = await engine.health();
  for (let i = 0; i < 50 && health.body.sessions !== 0; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
    health = await engine.health();
  }
  return health;
}

/** A live token under fresh connection ids: each opens a session the sender cannot use. How many does the engine keep? */
async function tokenReplayProbe(stack: LocalStack, engine: BenchEngine, dir: string, count: number): Promise<void> {
  log(`\n▶ probe: ${count} replays of a live transfer token under fresh client connection ids`);
  const spec = await uploadSpec(stack, { key: 'ghost.bin', size: 1, destinationRoot: '/fuzz-ghost' });
  const before = await engine.health();
  const socket = createSocket('udp4');
  let replies = 0;
  let replyBytes = 0;
  socket.on('message', (b) => ((replies += 1), (replyBytes += b.length)));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  let sentBytes = 0;
  for (let i = 0; i < count; i += 1) {
    const hello = encodeClientHello({ version: protocolVersion, clientConnectionId: randomBytes(connectionIdBytes), clientNonce: randomBytes(16), token: spec.token });
    socket.send(hello, engine.port, '127.0.0.1');
    sentBytes += hello.length;
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 1500));
  const after = await engine.health();
  log(
    `  engine sessions ${before.body.sessions} → ${after.body.sessions} (sessionsStarted +${Number(after.body.sessionsStarted) - Number(before.body.sessionsStarted)}, ` +
      `hellosRefused +${Number(after.body.hellosRefused) - Number(before.body.hellosRefused)}, unprovenSessions ${after.body.unprovenSessions ?? '—'}, ` +
      `unprovenDropped +${Number(after.body.unprovenDropped ?? 0) - Number(before.body.unprovenDropped ?? 0)}); the engine answered the replayer with ${replies} datagrams / ${replyBytes} bytes for ${sentBytes} bytes sent`,
  );
  const smallFile = join(dir, 'probe.bin');
  await writeRandomFile(smallFile, MiB);
  const probeSpec = await uploadSpec(stack, { key: 'probe.bin', size: MiB, destinationRoot: '/fuzz-probe' });
  const run = await runUpload({ ...probeSpec, fasp_port: engine.port }, [{ index: 0, path: 'probe.bin', size: MiB, localPath: smallFile }]);
  log(`  a legitimate 1 MiB upload right after: ${run.result.status}${run.result.error ? ` (${run.result.error.code}: ${run.result.error.message})` : ''} in ${fixed(run.seconds, 1)} s`);
  const t0 = performance.now();
  let sessions = Number(after.body.sessions);
  while (sessions > 0 && performance.now() - t0 < 45_000) {
    await new Promise((r) => setTimeout(r, 500));
    sessions = Number((await engine.health()).body.sessions);
  }
  log(`  sessions back to ${sessions} after ${fixed((performance.now() - t0) / 1000 + run.seconds, 1)} s more`);
  socket.close();
}

/** An authenticated client that sends data beyond its own manifest (a buggy or hostile SDK): the engine must close that session, not exit. */
async function hostilePeerProbe(stack: LocalStack, dir: string): Promise<void> {
  log('\n▶ probe: an authenticated client sends 4000 bytes for a 100-byte manifest (fresh engine)');
  const engine = await startBenchEngine(stack, cleanup, { logFile: join(dir, 'engine-hostile.log') });
  try {
    const spec = await uploadSpec(stack, { key: 'a.bin', size: 100, destinationRoot: '/fuzz-hostile' });
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const conn = connectionFor(spec, addressKey('127.0.0.1', engine.port));
    let closed: string | undefined;
    const driver = new ConnectionDriver(conn, socket, (event) => {
      if (event.type === 'connected') {
        conn.sendControl(encodeControl({ t: 'files', files: [{ index: 0, path: 'a.bin', size: 100 }], final: true }));
        conn.write(0, randomBytes(4000)); // sent once the engine grants MAX_DATA
        driver.kick();
      } else if (event.type === 'closed') closed = `${event.code} ${event.reason}`;
    });
    socket.on('message', (b, r) => driver.input(b, addressKey(r.address, r.port)));
    driver.service();
    await new Promise((r) => setTimeout(r, 2000));
    driver.stop();
    socket.close();
    const child = engine.service.process;
    const crashed = child.exitCode !== null || child.signalCode !== null;
    const error = readFileSync(engine.logFile, 'utf8').split('\n').find((l) => /Error: /.test(l));
    log(
      crashed
        ? `  ✗ the engine process EXITED (code ${child.exitCode}): ${error?.trim() ?? 'see its log'} — every session on it is gone`
        : `  ✓ the engine is alive; the session ended with: ${closed ?? 'still open'}`,
    );
  } finally {
    await engine.stop();
  }
}

main()
  .then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  )
  .finally(() => cleanup.run());
