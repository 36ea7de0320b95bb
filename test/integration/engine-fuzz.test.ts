import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../../core/clients';
import { FuzzGenerator, hostileTokens, Prng, sendFuzz, UdpRelay, type SendStats } from '../../bench/fuzz-lib';
import { Cleanup, runUpload, sessionEndStats, startBenchEngine, startBenchStack, uploadSpec, type BenchEngine, type UploadRun } from '../../bench/lib';
import { Keyring } from '../../core/token';
import type { LocalStack } from '../../local/stack';
import { testBytes } from '../support/s3';

/**
 * `npm run bench:fuzz` at test scale: the real engine process (s3rver, dynalite, engine as children of
 * the local stack) takes 10,000 hostile datagrams from another socket while an honest 8 MiB upload runs
 * through a relay that captures its packets for the fuzzer to mutate and replay. The upload must complete
 * byte-exact and the engine must stay up and healthy.
 */
const MiB = 1024 * 1024;
const seed = Number(process.env.FUZZ_SEED ?? 20_261_121);
const cleanup = new Cleanup();
let dir: string;
let stack: LocalStack;
let engine: BenchEngine;
let relay: UdpRelay;
let s3: S3Client;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-engine-fuzz-'));
  cleanup.add('temporary files', async () => (await import('node:fs')).rmSync(dir, { recursive: true, force: true }));
  stack = await startBenchStack(join(dir, 'stack'), cleanup);
  engine = await startBenchEngine(stack, cleanup, { logFile: join(dir, 'engine.log') });
  relay = new UdpRelay('127.0.0.1', engine.port);
  await relay.start();
  cleanup.add('relay', () => relay.close());
  s3 = createS3Client(stack.config);
  cleanup.add('s3 client', () => s3.destroy());
});

afterAll(async () => {
  await cleanup.run();
});

async function readBack(key: string): Promise<Buffer> {
  const object = await s3.send(new GetObjectCommand({ Bucket: 'local', Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

describe('the engine under hostile datagrams', () => {
  it(`an honest upload completes byte-exact while 10,000 fuzzed datagrams hit the engine (seed ${seed})`, async () => {
    const bytes = testBytes(8 * MiB, seed);
    const file = join(dir, 'honest.bin');
    writeFileSync(file, bytes);
    // About 40 Mbit/s, so the upload (≈ 2 s) outlasts the fuzzer.
    const spec = await uploadSpec(stack, { key: 'honest.bin', size: bytes.length, destinationRoot: '/fuzz', targetRateKbps: 40_000 });
    const keyring = Keyring.fromJson((stack.config.tokenKeys as { json: string }).json);
    const keyJson = (id: string) => JSON.stringify({ currentKeyId: id, keys: { [id]: randomBytes(32).toString('base64') } });
    const ticket = {
      transferId: spec.slipstream.transfer_id,
      bucket: 'local',
      keyPrefix: spec.slipstream.key_prefix,
      direction: 'send' as const,
      maxRateKbps: spec.target_rate_cap_kbps,
      minRateKbps: 0,
      ratePolicy: spec.rate_policy,
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
      sessionSecret: spec.slipstream.session_secret,
    };
    const generator = new FuzzGenerator(
      new Prng(seed),
      hostileTokens(keyring, ticket, Keyring.fromJson(keyJson(keyring.currentKeyId)), Keyring.fromJson(keyJson('unknown'))),
    );

    const t0 = performance.now();
    let uploadEndedMs = Infinity;
    const uploading: Promise<UploadRun> = runUpload({ ...spec, fasp_port: relay.port }, [{ index: 0, path: 'honest.bin', size: bytes.length, localPath: file }]).finally(
      () => (uploadEndedMs = performance.now() - t0),
    );
    // Fuzz once the session carries data, so there are real packets to mutate and replay.
    while (relay.capture.toEngine.length < 32 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
    expect(relay.capture.serverConnectionIds.length).toBeGreaterThan(0);
    const fuzzStartMs = performance.now() - t0;
    let seen = -1;
    const stats: SendStats = await sendFuzz({
      host: '127.0.0.1',
      port: engine.port,
      count: 10_000,
      generator,
      ratePerSecond: 10_000,
      beforeBatch: () => {
        if (relay.version === seen) return;
        seen = relay.version;
        generator.update(relay.sample(256));
      },
    });
    const fuzzEndMs = performance.now() - t0;
    const run = await uploading;

    expect(stats.sent).toBe(10_000);
    expect(fuzzStartMs).toBeLessThan(uploadEndedMs); // the fuzz hit a live session
    expect(run.result).toMatchObject({ status: 'COMPLETED', filesDone: 1 });
    expect((await readBack(`${spec.slipstream.key_prefix}honest.bin`)).equals(bytes)).toBe(true);

    // Alive and healthy, with the hostile traffic counted and dropped, never answered.
    expect(engine.service.process.exitCode).toBeNull();
    let health = await engine.health();
    // A replayed hello of the honest session that lands after it ended opens an unproven session (no
    // client behind it ever authenticates), which the engine drops silently after 5 s: wait for it.
    for (let i = 0; i < 80 && health.body.sessions !== 0; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      health = await engine.health();
    }
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', sessions: 0, unprovenSessions: 0 });
    expect(Number(health.body.datagramsReceived)).toBeGreaterThanOrEqual(10_000);
    expect(Number(health.body.hellosRefused)).toBeGreaterThan(0);
    const byReason = ['hellosRefusedMalformed', 'hellosRefusedBusy', 'hellosRefusedToken', 'hellosRefusedUnproven'].map((k) => Number(health.body[k]));
    expect(byReason.reduce((a, b) => a + b, 0)).toBe(Number(health.body.hellosRefused));
    expect(Number(health.body.hellosRefusedMalformed)).toBeGreaterThan(0);
    expect(Number(health.body.hellosRefusedToken)).toBeGreaterThan(0);
    expect(Number(health.body.unknownConnection)).toBeGreaterThan(0);
    const session = sessionEndStats(engine.logFile, spec.slipstream.transfer_id);
    const sessionDrops = Number(session?.droppedForged) + Number(session?.droppedReplayed) + Number(session?.droppedMalformed);
    expect(sessionDrops).toBeGreaterThan(0);
    // /health keeps the drops of sessions that have ended.
    const healthDrops = ['packetsDroppedForged', 'packetsDroppedReplayed', 'packetsDroppedMalformed'].map((k) => Number(health.body[k]));
    expect(healthDrops.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(sessionDrops);
    // Thousands of refused hellos, about one log line a second.
    const refusedLines = readFileSync(engine.logFile, 'utf8').split('\n').filter((l) => l.includes('"hello refused"')).length;
    expect(refusedLines).toBeLessThan(Math.max(20, Number(health.body.hellosRefused) / 50));
    // Nothing unauthenticated gets an answer while the honest session lives (after it, a replay of its
    // hello is a new session that is refused with a CLOSE).
    if (fuzzEndMs < uploadEndedMs) expect(stats.replies).toBe(0);
    console.log(
      `fuzz: ${stats.sent} datagrams at ${stats.perSecond.toFixed(0)}/s from ${fuzzStartMs.toFixed(0)} ms; honest upload ${run.result.status} in ${run.seconds.toFixed(2)} s; ` +
        `/health ${JSON.stringify(health.body)}; honest session dropped ${session?.droppedForged} forged, ${session?.droppedReplayed} replayed, ${session?.droppedMalformed} malformed`,
    );

    // And it still takes new sessions.
    const small = join(dir, 'after.bin');
    const smallBytes = testBytes(256 * 1024, seed + 1);
    writeFileSync(small, smallBytes);
    const after = await uploadSpec(stack, { key: 'after.bin', size: smallBytes.length, destinationRoot: '/fuzz' });
    const afterRun = await runUpload({ ...after, fasp_port: engine.port }, [{ index: 0, path: 'after.bin', size: smallBytes.length, localPath: small }]);
    expect(afterRun.result.status).toBe('COMPLETED');
    expect((await readBack(`${after.slipstream.key_prefix}after.bin`)).equals(smallBytes)).toBe(true);
  }, 60_000);
});
