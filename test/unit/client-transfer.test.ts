import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TransferSpec, TransferStatus } from '../../contracts';
import { SlipstreamApiError, SlipstreamInputError } from '../../client/sdk/errors';
import type { LocalFile } from '../../client/sdk/files';
import { TransferJournal, journalKey } from '../../client/sdk/journal';
import { BoundedAsyncQueue } from '../../client/sdk/queue';
import type { SessionCallbacks, SessionJob, SessionResult, SessionRunner } from '../../client/sdk/session-types';
import { TransferClient, chunkFiles, statusQueueCapacity, type Transfer } from '../../client/sdk/transfer-client';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket } from '../support/s3';
import { inject } from 'vitest';

/**
 * TransferClient against the real API (in-process Hono app on real s3rver and dynalite) with a fake
 * session runner in place of the UDP engine.
 */
let api: TestApi;
let bucket: string;
let dir: string;
let folder: string;

beforeAll(async () => {
  api = await createTestApi();
  bucket = await createBucket(inject('s3rver'));
  dir = mkdtempSync(join(tmpdir(), 'slip-transfer-'));
  folder = join(dir, 'album');
  mkdirSync(join(folder, 'sub'), { recursive: true });
  writeFileSync(join(folder, 'a.jpg'), Buffer.alloc(10));
  writeFileSync(join(folder, 'sub', 'b.jpg'), Buffer.alloc(5));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const appFetch = ((input: string | URL | Request, init?: RequestInit) =>
  Promise.resolve(api.app.request(input instanceof Request ? input : String(input), init))) as typeof fetch;

function client(runner: SessionRunner, stateDir = join(dir, `state-${Math.random().toString(36).slice(2)}`)) {
  return new TransferClient({
    endpoint: 'http://api.test',
    apiKey: api.adminKey,
    fetch: appFetch,
    sessionRunner: runner,
    journal: new TransferJournal(stateDir),
    env: {},
    cwd: dir,
  });
}

const completed = (bytesDone: number, filesDone: number): SessionResult => ({ status: 'COMPLETED', bytesDone, filesDone, fileErrors: [] });

async function collect(transfer: Transfer): Promise<TransferStatus[]> {
  const seen: TransferStatus[] = [];
  for await (const status of transfer) seen.push(status);
  return seen;
}

/** A runner that stays open until canceled, exposing its callbacks and pause/resume spies. */
function heldRunner() {
  const handles = { pause: vi.fn(), resume: vi.fn() };
  let callbacks: SessionCallbacks | undefined;
  let started!: () => void;
  const ready = new Promise<void>((resolve) => (started = resolve));
  const runner: SessionRunner = (_spec, _job, cb) =>
    new Promise((resolve) => {
      callbacks = cb;
      cb.attach(handles);
      cb.onStatus('RUNNING');
      cb.signal.addEventListener('abort', () => resolve({ status: 'CANCELED', bytesDone: 0, filesDone: 0, fileErrors: [] }));
      started();
    });
  return { runner, handles, ready, callbacks: () => callbacks! };
}

describe('TransferClient.upload', () => {
  it('sets the transfer up through the API and hands the spec and files to the session', async () => {
    const calls: { spec: TransferSpec; job: SessionJob }[] = [];
    const runner: SessionRunner = async (spec, job, cb) => {
      calls.push({ spec, job });
      cb.onStatus('RUNNING');
      cb.onProgress({ bytesDone: 10, bytesTotal: 15, rateKbps: 800, filesDone: 1, filesTotal: 2 });
      return completed(15, 2);
    };
    const transfer = await client(runner).upload([folder], `s3://${bucket}/in/`, { targetRateKbps: 5000, ratePolicy: 'low' });
    expect(transfer.id).toMatch(/^tr_[0-9a-f]{20}$/);
    expect(transfer.status).toBe('QUEUED');
    const progress: number[] = [];
    transfer.on('progress', (p) => progress.push(p.bytesDone));
    const [statuses, result] = await Promise.all([collect(transfer), transfer.done]);

    expect(statuses).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
    expect(progress).toEqual([10]);
    expect(result).toMatchObject({ id: transfer.id, status: 'COMPLETED', bytesDone: 15, bytesTotal: 15, filesDone: 2, filesTotal: 2, resumed: false });
    const [{ spec, job }] = calls as [{ spec: TransferSpec; job: SessionJob }];
    expect(spec.direction).toBe('send');
    expect(spec.slipstream).toMatchObject({ transfer_id: transfer.id, bucket, key_prefix: 'in/' });
    expect(spec.paths).toEqual([
      { source: 'album/a.jpg', destination: 'album/a.jpg', size: 10 },
      { source: 'album/sub/b.jpg', destination: 'album/sub/b.jpg', size: 5 },
    ]);
    expect(spec).toMatchObject({ target_rate_kbps: 5000, rate_policy: 'low' });
    expect(job).toEqual({
      direction: 'upload',
      files: [
        { index: 0, path: 'album/a.jpg', size: 10, localPath: join(folder, 'a.jpg') },
        { index: 1, path: 'album/sub/b.jpg', size: 5, localPath: join(folder, 'sub', 'b.jpg') },
      ],
      // The bucket allows HTTPS fallback: UDP counts as blocked or lost sooner, so HTTPS takes over.
      udpHandshakeTimeoutMs: 5000,
      udpSilenceTimeoutMs: 10000,
    });
    const record = await client(runner).api.getTransfer(transfer.id);
    expect(record).toMatchObject({ bucket, direction: 'upload', files: 2, bytesTotal: 15 });
  });

  it('pauses, resumes and cancels (on the service too)', async () => {
    const held = heldRunner();
    const transfer = await client(held.runner).upload([folder], `s3://${bucket}/p`);
    const statuses = collect(transfer);
    await held.ready;
    transfer.pause();
    expect(held.handles.pause).toHaveBeenCalledTimes(1);
    expect(transfer.status).toBe('PAUSED');
    held.callbacks().onStatus('RUNNING'); // the session's late RUNNING does not undo a pause
    expect(transfer.status).toBe('PAUSED');
    transfer.resume();
    expect(held.handles.resume).toHaveBeenCalledTimes(1);
    await transfer.cancel();
    const result = await transfer.done;
    expect(result.status).toBe('CANCELED');
    expect(await statuses).toEqual(['QUEUED', 'RUNNING', 'PAUSED', 'RUNNING', 'CANCELED']);
    expect((await client(held.runner).api.getTransfer(transfer.id)).status).toBe('CANCELED');
  });

  it('replays a pause asked for before the session could take it', async () => {
    const held = heldRunner();
    const transfer = await client(held.runner).upload([folder], `s3://${bucket}/early`);
    transfer.pause();
    await held.ready;
    expect(held.handles.pause).toHaveBeenCalledTimes(1);
    expect(transfer.status).toBe('PAUSED');
    transfer.resume();
    expect(transfer.status).toBe('RUNNING');
    await transfer.cancel();
    expect((await transfer.done).status).toBe('CANCELED');
  });

  it('reports a failing or throwing session as FAILED, never as a rejection', async () => {
    const failing: SessionRunner = async () => ({ status: 'FAILED', bytesDone: 3, filesDone: 0, fileErrors: [{ path: 'album/a.jpg', code: 'ChecksumMismatch', message: 'x' }], error: { code: 'Timeout', message: 'engine silent' } });
    const failed = await (await client(failing).upload([folder], `s3://${bucket}/f`)).done;
    expect(failed).toMatchObject({ status: 'FAILED', error: { code: 'Timeout' }, fileErrors: [{ code: 'ChecksumMismatch' }] });
    const throwing: SessionRunner = async () => {
      throw Object.assign(new Error('socket closed'), { code: 'ECONNRESET' });
    };
    const thrown = await (await client(throwing).upload([folder], `s3://${bucket}/t`)).done;
    expect(thrown).toMatchObject({ status: 'FAILED', error: { code: 'ECONNRESET', message: 'socket closed' } });
  });

  it('continues an interrupted or failed upload under the same transfer id, then starts afresh once done', async () => {
    const stateDir = join(dir, 'resume-state');
    const held = heldRunner();
    const first = await client(held.runner, stateDir).upload([folder], `s3://${bucket}/r`);
    await held.ready; // "Ctrl-C": the process would die here; the transfer is never finished
    const failing: SessionRunner = async () => ({ status: 'FAILED', bytesDone: 0, filesDone: 0, fileErrors: [] });
    const second = await client(failing, stateDir).upload([folder], `s3://${bucket}/r`);
    expect(second.id).toBe(first.id);
    expect(second.resumed).toBe(true);
    expect((await second.done).status).toBe('FAILED');

    const specs: TransferSpec[] = [];
    const third = await client(async (spec) => (specs.push(spec), completed(15, 2)), stateDir).upload([folder], `s3://${bucket}/r`);
    expect(third.id).toBe(first.id);
    expect((await third.done).status).toBe('COMPLETED');
    expect(specs[0]!.paths).toHaveLength(2); // path lists are not kept in the journal, but restored
    const fourth = await client(async () => completed(15, 2), stateDir).upload([folder], `s3://${bucket}/r`);
    expect(fourth.id).not.toBe(first.id);
    expect(fourth.resumed).toBe(false);
    await fourth.done;
  });

  it('starts afresh when a file changed or the earlier transfer was canceled elsewhere', async () => {
    const stateDir = join(dir, 'fresh-state');
    const fail: SessionRunner = async () => ({ status: 'FAILED', bytesDone: 0, filesDone: 0, fileErrors: [] });
    const first = await client(fail, stateDir).upload([folder], `s3://${bucket}/c`);
    await first.done;
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(folder, 'a.jpg'), later, later);
    const changed = await client(fail, stateDir).upload([folder], `s3://${bucket}/c`);
    expect(changed.id).not.toBe(first.id);
    await changed.done;
    await client(fail, stateDir).api.cancelTransfer(changed.id);
    const afterCancel = await client(fail, stateDir).upload([folder], `s3://${bucket}/c`);
    expect(afterCancel.id).not.toBe(changed.id);
    await afterCancel.done;
  });

  it('checks the bucket before it needs the session or creates anything', async () => {
    const runner = vi.fn<SessionRunner>();
    const error = await client(runner).upload([folder], 's3://no-such-bucket-here/x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SlipstreamApiError);
    expect(error).toMatchObject({ status: 404, code: 'NoSuchBucket' });
    await expect(client(runner).upload([join(dir, 'missing')], `s3://${bucket}/x`)).rejects.toThrow(SlipstreamInputError);
    mkdirSync(join(dir, 'empty-folder'), { recursive: true });
    await expect(client(runner).upload([join(dir, 'empty-folder')], `s3://${bucket}/x`)).rejects.toThrow(/nothing to upload/);
    expect(runner).not.toHaveBeenCalled();
  });

  it('keeps per-iterator status queues bounded, dropping the oldest', async () => {
    const held = heldRunner();
    const transfer = await client(held.runner).upload([folder], `s3://${bucket}/q`);
    const iterator = transfer[Symbol.asyncIterator]();
    await held.ready;
    for (let i = 0; i < 100; i++) {
      transfer.pause();
      transfer.resume();
    }
    await transfer.cancel();
    await transfer.done;
    const seen: TransferStatus[] = [];
    for await (const s of { [Symbol.asyncIterator]: () => iterator }) seen.push(s);
    expect(seen.length).toBe(statusQueueCapacity);
    expect(seen.at(-1)).toBe('CANCELED');
    // A late iterator gets the final status and ends.
    expect(await collect(transfer)).toEqual(['CANCELED']);
  });
});

describe('TransferClient.download', () => {
  it('asks for the last segment below its parent prefix and writes below the local folder', async () => {
    const calls: { spec: TransferSpec; job: SessionJob }[] = [];
    const runner: SessionRunner = async (spec, job, cb) => {
      calls.push({ spec, job });
      cb.onProgress({ bytesDone: 4, bytesTotal: 8, rateKbps: 1, filesDone: 0, filesTotal: 3 });
      return completed(8, 3);
    };
    const target = join(dir, 'downloads', 'here');
    const transfer = await client(runner).download(`s3://${bucket}/photos/2026/`, target);
    let last;
    transfer.on('progress', (p) => (last = p));
    const result = await transfer.done;
    expect(last).toEqual({ bytesDone: 4, bytesTotal: 8, rateKbps: 1, filesDone: 0, filesTotal: 3, transport: 'udp' });
    expect(result).toMatchObject({ status: 'COMPLETED', bytesDone: 8, filesDone: 3 });
    const [{ spec, job }] = calls as [{ spec: TransferSpec; job: SessionJob }];
    expect(spec.direction).toBe('receive');
    expect(spec.slipstream.key_prefix).toBe('photos/');
    expect(spec.paths).toEqual([{ source: '2026/' }]);
    expect(job).toEqual({ direction: 'download', paths: ['2026/'], localRoot: target, udpHandshakeTimeoutMs: 5000, udpSilenceTimeoutMs: 10000 });
  });

  it('refuses a whole-bucket download', async () => {
    await expect(client(vi.fn<SessionRunner>()).download(`s3://${bucket}`, dir)).rejects.toThrow(/name a key or prefix/);
  });
});

describe('chunkFiles', () => {
  const file = (i: number, name = `f${i}`): LocalFile => ({ index: i, path: name, sizeBytes: i, localPath: `/x/${name}`, mtimeMs: 0 });
  it('splits by path count and by body size, keeping order', () => {
    const files = Array.from({ length: 25 }, (_, i) => file(i));
    expect(chunkFiles(files, 10).map((c) => c.length)).toEqual([10, 10, 5]);
    expect(chunkFiles(files, 10).flat()).toEqual(files);
    const long = Array.from({ length: 4 }, (_, i) => file(i, `${i}-${'n'.repeat(500)}`));
    expect(chunkFiles(long, 10_000, 2100).map((c) => c.length)).toEqual([2, 2]);
  });
});

describe('BoundedAsyncQueue', () => {
  it('delivers in order, drops the oldest when full, and ends after close', async () => {
    const queue = new BoundedAsyncQueue<number>(3);
    for (let i = 1; i <= 5; i++) queue.push(i);
    expect(queue.dropped).toBe(2);
    queue.close();
    queue.push(6);
    const seen: number[] = [];
    for await (const n of queue) seen.push(n);
    expect(seen).toEqual([3, 4, 5]);
  });

  it('wakes a waiting reader and frees items on return()', async () => {
    const queue = new BoundedAsyncQueue<string>(2);
    const next = queue.next();
    queue.push('a');
    expect(await next).toEqual({ value: 'a', done: false });
    queue.push('b');
    await queue.return();
    expect(queue.size).toBe(0);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });
});

describe('TransferJournal', () => {
  it('keys by the files, returns entries with time left, and forgets those about to expire', async () => {
    const files = [{ path: 'a', sizeBytes: 1, mtimeMs: 5 }];
    const base = { direction: 'upload' as const, endpoint: 'http://e', bucket: 'b', prefix: 'p' };
    const key = journalKey({ ...base, files });
    expect(journalKey({ ...base, files: [{ ...files[0]!, sizeBytes: 2 }] })).not.toBe(key);
    expect(journalKey({ ...base, files: [{ ...files[0]!, mtimeMs: 6 }] })).not.toBe(key);
    expect(journalKey({ ...base, prefix: 'q', files })).not.toBe(key);

    const spec = await client(vi.fn<SessionRunner>()).api.uploadSetup(bucket, { paths: [{ source: 'a', size: 1 }] });
    const expiresMs = new Date(spec.slipstream.token_expires_at).getTime();
    const journal = new TransferJournal(join(dir, 'journal-test'));
    await journal.put(key, [spec]);
    expect((await journal.get(key))?.specs[0]?.slipstream.transfer_id).toBe(spec.slipstream.transfer_id);
    expect(await journal.get(key, new Date(expiresMs - 60_000))).toBeUndefined(); // too close to expiry: dropped
    expect(await journal.get(key)).toBeUndefined();
  });
});
