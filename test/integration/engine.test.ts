import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { runUdpSession, checkUdp } from '../../client/sdk/session';
import type { SessionJob, SessionResult } from '../../client/sdk/session-types';
import type { TransferSpec } from '../../contracts';
import { createDocumentClient } from '../../core/clients';
import { PartRepository } from '../../core/state/parts';
import { Keyring, sealToken, type Ticket } from '../../core/token';
import { createEngine } from '../../engine-service/engine';
import { silentLogger } from '../../engine-service/log';
import { startLoopbackStack, type LocalStack } from '../../local/stack';
import { createTestApi } from '../support/harness';
import { createBucket, readObject, testBytes } from '../support/s3';

/** The UDP engine end to end on loopback: real engine process, real s3rver and dynalite, real sockets. */
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-engine-'));
let stack: LocalStack;
const s3rverTarget = () => ({ name: 's3rver' as const, endpoint: stack.s3Endpoint, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });

beforeAll(async () => {
  // A short drain so the SIGTERM test does not wait the production 30 s.
  process.env.SLIPSTREAM_DRAIN_TIMEOUT_MS = '300';
  stack = await startLoopbackStack(join(dir, 'data'));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function api<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${stack.credentials.apiKey}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return (await res.json()) as T;
}

async function setup(direction: 'upload' | 'download', paths: { source: string; size?: number }[], root: string): Promise<TransferSpec> {
  const request = direction === 'upload' ? { paths, destination_root: root } : { paths, source_root: root };
  const body = await api<{ transfer_specs: { transfer_spec: TransferSpec }[] }>(`/files/${direction}_setup`, {
    transfer_requests: [{ transfer_request: { ...request, slipstream: { bucket: 'local' } } }],
  });
  return body.transfer_specs[0]!.transfer_spec;
}

const quiet = () => ({ onProgress: () => undefined, onStatus: () => undefined, attach: () => undefined, signal: new AbortController().signal });

/** Local files for an upload job, written under `root`. */
function writeFiles(root: string, files: Record<string, Buffer>): Extract<SessionJob, { direction: 'upload' }>['files'] {
  return Object.entries(files).map(([path, bytes], index) => {
    const localPath = join(root, path);
    mkdirSync(join(localPath, '..'), { recursive: true });
    writeFileSync(localPath, bytes);
    return { index, path, size: bytes.length, localPath };
  });
}

describe('the UDP engine on loopback', () => {
  it('uploads a folder (nested, empty, small and large files) and downloads it back byte-exact', async () => {
    const files: Record<string, Buffer> = { 'empty.txt': Buffer.alloc(0), 'big/large.bin': testBytes(20 * MiB + 7, 3) };
    for (let i = 0; i < 200; i += 1) files[`small/${String(i).padStart(3, '0')}.txt`] = testBytes(1 + ((i * 997) % 9000), i + 10);
    const job = writeFiles(join(dir, 'folder'), files);
    const spec = await setup('upload', job.map((f) => ({ source: f.path, size: f.size })), '/folder');
    const result = await runUdpSession(spec, { direction: 'upload', files: job }, quiet());
    expect(result).toMatchObject({ status: 'COMPLETED', filesDone: job.length, fileErrors: [] });
    for (const [path, bytes] of Object.entries(files)) expect((await readObject(s3rverTarget(), 'local', `folder/${path}`)).equals(bytes), path).toBe(true);
    const record = await api<Record<string, unknown>>(`/v1/transfers/${spec.slipstream.transfer_id}`);
    expect(record).toMatchObject({ status: 'COMPLETED', files: job.length, bytesTransferred: job.reduce((s, f) => s + f.size, 0) });

    const out = join(dir, 'download');
    const down = await setup('download', [{ source: 'folder/' }], '/');
    const back = await runUdpSession(down, { direction: 'download', paths: ['folder/'], localRoot: out }, quiet());
    expect(back).toMatchObject({ status: 'COMPLETED', filesDone: job.length });
    for (const [path, bytes] of Object.entries(files)) expect(readFileSync(join(out, 'folder', path)).equals(bytes), path).toBe(true);
    // The client's last `done` reached the engine before its CLOSE: the download is recorded COMPLETED.
    await expect.poll(async () => (await api<{ status: string }>(`/v1/transfers/${down.slipstream.transfer_id}`)).status, { timeout: 5_000 }).toBe('COMPLETED');
  });

  it('resumes after the client is killed mid-upload, without sending recorded parts again', async () => {
    const data = testBytes(48 * MiB, 5);
    const job = writeFiles(join(dir, 'resume-client'), { 'r.bin': data });
    const spec = await setup('upload', [{ source: 'r.bin', size: data.length }], '/resume-client');
    const jobFile = join(dir, 'job-client.json');
    writeFileSync(jobFile, JSON.stringify({ spec, job: { direction: 'upload', files: job } }));
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/udp-client.ts', jobFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    const parts = new PartRepository(createDocumentClient(stack.config), stack.config.tableName);
    // Kill -9 once at least two parts are durable: what a Ctrl-C or crash leaves behind.
    for (let i = 0; i < 600 && (await parts.allParts(spec.slipstream.transfer_id)).length < 2; i += 1) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    const durableBefore = (await parts.allParts(spec.slipstream.transfer_id)).map((p) => p.partNumber);
    expect(durableBefore.length).toBeGreaterThanOrEqual(2);

    const progress: number[] = [];
    const result = await runUdpSession(spec, { direction: 'upload', files: job }, { ...quiet(), onProgress: (p) => progress.push(p.bytesDone) });
    expect(result.status).toBe('COMPLETED');
    expect((await readObject(s3rverTarget(), 'local', 'resume-client/r.bin')).equals(data)).toBe(true);
    // Bytes sent before `have` on the ServerHello credit that the engine already held count once.
    expect(progress.every((bytes, i) => i === 0 || bytes >= progress[i - 1]!)).toBe(true);
    expect(progress.at(-1)).toBe(data.length);
    const after = await parts.allParts(spec.slipstream.transfer_id);
    expect(after.map((p) => p.partNumber).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    // Parts recorded before the kill keep their first record: they were not uploaded again.
    for (const number of durableBefore) {
      const before = after.find((p) => p.partNumber === number)!;
      expect(before.recordedAt <= after.find((p) => !durableBefore.includes(p.partNumber))!.recordedAt).toBe(true);
    }
  });

  it('resumes after the engine is killed (-9) and restarted', async () => {
    const data = testBytes(40 * MiB, 8);
    const job = writeFiles(join(dir, 'resume-engine'), { 'e.bin': data });
    const spec = await setup('upload', [{ source: 'e.bin', size: data.length }], '/resume-engine');
    const parts = new PartRepository(createDocumentClient(stack.config), stack.config.tableName);
    const controller = new AbortController();
    const first = runUdpSession(spec, { direction: 'upload', files: job }, { ...quiet(), signal: controller.signal });
    for (let i = 0; i < 600 && (await parts.allParts(spec.slipstream.transfer_id)).length < 2; i += 1) await new Promise((r) => setTimeout(r, 50));
    stack.engine().process.kill('SIGKILL');
    controller.abort();
    expect((await first).status).toBe('CANCELED');
    const recorded = (await parts.allParts(spec.slipstream.transfer_id)).length;
    expect(recorded).toBeGreaterThanOrEqual(2);
    await stack.restartEngine();
    const result = await runUdpSession(spec, { direction: 'upload', files: job }, quiet());
    expect(result.status).toBe('COMPLETED');
    expect((await readObject(s3rverTarget(), 'local', 'resume-engine/e.bin')).equals(data)).toBe(true);
  });

  it('drains on SIGTERM: the running session is closed for a resume, which another engine completes', async () => {
    const data = testBytes(40 * MiB, 9);
    const job = writeFiles(join(dir, 'drain'), { 'd.bin': data });
    const spec = await setup('upload', [{ source: 'd.bin', size: data.length }], '/drain');
    const parts = new PartRepository(createDocumentClient(stack.config), stack.config.tableName);
    const first = runUdpSession(spec, { direction: 'upload', files: job }, quiet());
    for (let i = 0; i < 600 && (await parts.allParts(spec.slipstream.transfer_id)).length < 1; i += 1) await new Promise((r) => setTimeout(r, 50));
    const engine = stack.engine().process;
    const exited = new Promise<number | null>((resolve) => engine.once('exit', (code) => resolve(code)));
    engine.kill('SIGTERM');
    expect(await exited).toBe(0);
    const interrupted = await first;
    expect(interrupted.status).toBe('FAILED');
    expect(interrupted.error?.message).toMatch(/shutting down/);
    await stack.restartEngine();
    const result = await runUdpSession(spec, { direction: 'upload', files: job }, quiet());
    expect(result.status).toBe('COMPLETED');
    expect((await readObject(s3rverTarget(), 'local', 'drain/d.bin')).equals(data)).toBe(true);
  });

  it('pauses and resumes an upload, and a cancel ends it as CANCELED on the service', async () => {
    const data = testBytes(24 * MiB, 12);
    const job = writeFiles(join(dir, 'pause'), { 'p.bin': data });
    const spec = await setup('upload', [{ source: 'p.bin', size: data.length }], '/pause');
    let handles: { pause(): void; resume(): void } | undefined;
    let latest = 0;
    const statuses: string[] = [];
    const running = runUdpSession(spec, { direction: 'upload', files: job }, {
      onProgress: (p) => (latest = p.bytesDone),
      onStatus: (s) => statuses.push(s),
      attach: (h) => (handles = h),
      signal: new AbortController().signal,
    });
    for (let i = 0; i < 200 && latest < 2 * MiB; i += 1) await new Promise((r) => setTimeout(r, 25));
    handles!.pause();
    await new Promise((r) => setTimeout(r, 500));
    const atPause = latest;
    await new Promise((r) => setTimeout(r, 1000));
    expect(latest - atPause).toBeLessThan(MiB);
    handles!.resume();
    expect((await running).status).toBe('COMPLETED');
    expect(statuses).toEqual(expect.arrayContaining(['RUNNING', 'PAUSED']));
    expect((await readObject(s3rverTarget(), 'local', 'pause/p.bin')).equals(data)).toBe(true);

    const cancelSpec = await setup('upload', [{ source: 'p.bin', size: data.length }], '/canceled');
    const controller = new AbortController();
    const canceled = runUdpSession(cancelSpec, { direction: 'upload', files: job }, { ...quiet(), signal: controller.signal });
    await new Promise((r) => setTimeout(r, 300));
    controller.abort();
    expect((await canceled).status).toBe('CANCELED');
    let record: Record<string, unknown> = {};
    for (let i = 0; i < 40 && record.status !== 'CANCELED'; i += 1) {
      await new Promise((r) => setTimeout(r, 50));
      record = await api(`/v1/transfers/${cancelSpec.slipstream.transfer_id}`);
    }
    expect(record.status).toBe('CANCELED');
  });

  it('gets no answer at all for a forged or expired token', async () => {
    const spec = await setup('upload', [{ source: 'x.bin', size: 1 }], '/refused');
    const forged = { ...spec, token: spec.token.slice(0, -4) + 'AAAA' };
    expect(await checkUdp(forged, { timeoutMs: 1500 })).toMatchObject({ ok: false });
    const keyring = Keyring.fromJson(readFileSync(join(dir, 'data', 'token-keys.json'), 'utf8'));
    const expired: Ticket = {
      transferId: spec.slipstream.transfer_id, bucket: 'local', keyPrefix: 'refused/', direction: 'send', maxRateKbps: 1000, minRateKbps: 0,
      ratePolicy: 'fair', expiresAt: Math.floor(Date.now() / 1000) - 1, sessionSecret: spec.slipstream.session_secret,
    };
    const expiredSpec = { ...spec, token: sealToken(keyring, 'transfer', expired, randomBytes(12)) };
    const result = await checkUdp(expiredSpec, { timeoutMs: 1500 });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/no answer over UDP/);
    expect(await checkUdp(spec, { timeoutMs: 3000 })).toMatchObject({ ok: true });
  });

  it('refuses keys outside the token and the wrong direction, with a reason', async () => {
    const spec = await setup('upload', [{ source: 'ok.bin', size: 3 }], '/scoped');
    const job = writeFiles(join(dir, 'scoped'), { 'ok.bin': Buffer.from('abc') });
    const escaped = await runUdpSession(spec, { direction: 'upload', files: [{ ...job[0]!, path: '../outside.bin' }] }, quiet());
    expect(escaped).toMatchObject({ status: 'FAILED', error: { code: 'InvalidObjectKey' } });
    const downloadSpec = await setup('download', [{ source: 'folder/empty.txt' }], '/');
    const wrongWay: SessionResult = await runUdpSession(downloadSpec, { direction: 'upload', files: job }, quiet());
    expect(wrongWay.status).toBe('FAILED');
  });
});

describe.skipIf(inject('rgw') === null)('the engine and an immutable bucket (Ceph RGW)', () => {
  it('refuses a session for a bucket with Object Lock, whatever the token says', async () => {
    const rgw = inject('rgw')!;
    const testApi = await createTestApi(rgw);
    const locked = await createBucket(rgw, { objectLock: true, prefix: 'locked' });
    const keyringJson = JSON.stringify({ currentKeyId: 'k1', keys: { k1: randomBytes(32).toString('base64') } });
    const config = { ...testApi.deps.config, tokenKeys: { source: 'inline' as const, json: keyringJson } };
    const engine = await createEngine(config, { host: '127.0.0.1', port: 0, healthHost: '127.0.0.1', healthPort: 0, maxSessions: 4, drainTimeoutMs: 100 }, silentLogger);
    await engine.start();
    try {
      const secret = randomBytes(32).toString('base64url');
      const ticket: Ticket = { transferId: 'tr_00000000000000000001', bucket: locked, keyPrefix: '', direction: 'send', maxRateKbps: 100_000, minRateKbps: 0, ratePolicy: 'fair', expiresAt: Math.floor(Date.now() / 1000) + 600, sessionSecret: secret };
      const token = sealToken(Keyring.fromJson(keyringJson), 'transfer', ticket, randomBytes(12));
      const spec = { remote_host: '127.0.0.1', fasp_port: engine.udpPort, token, rate_policy: 'fair', target_rate_kbps: 100_000, min_rate_kbps: 0, slipstream: { session_secret: secret } } as unknown as TransferSpec;
      const local = join(dir, 'locked.bin');
      writeFileSync(local, 'x');
      const result = await runUdpSession(spec, { direction: 'upload', files: [{ index: 0, path: 'locked.bin', size: 1, localPath: local }] }, quiet());
      expect(result).toMatchObject({ status: 'FAILED', error: { code: 'BucketImmutable' } });
    } finally {
      await engine.stop();
    }
  });
});
