import { createHash, randomBytes } from 'node:crypto';
import { HeadObjectCommand, ListPartsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import {
  checksumMetadataKey,
  completedFileSchema,
  downloadUrlsSchema,
  errorBodySchema,
  fileUploadStateSchema,
  maxTransportChanges,
  recordedPartSchema,
  setupResponseSchema,
  signedFilePartsSchema,
  transferSchema,
  type TransferRequest,
} from '../../contracts';
import { UploadSink } from '../../engine-service/upload-sink';
import { checksumOf, MiB, partDigest, partSizeFor } from '../../protocol/transfer';
import type { S3Target } from '../support/global-setup';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket, readObject, s3For, testBytes } from '../support/s3';

/**
 * HTTP fallback that continues a transfer (README "When UDP is blocked"), against real s3rver and
 * dynalite: the engine's own upload sink makes some parts durable, then the HTTPS routes finish the
 * same multipart upload; downloads get presigned ranged GETs.
 */

interface Ctx {
  api: TestApi;
  bucket: string;
  target: S3Target;
}

async function context(target: S3Target): Promise<Ctx> {
  return { api: await createTestApi(target), bucket: await createBucket(target, { prefix: 'cont' }), target };
}

async function body(res: Response): Promise<unknown> {
  return res.json() as Promise<unknown>;
}

async function expectError(res: Response, status: number, code: string): Promise<string> {
  const parsed = errorBodySchema.parse(await body(res));
  expect({ status: res.status, code: parsed.error.code }).toEqual({ status, code });
  return parsed.error.message;
}

const md5Of = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('base64');
const sha256Of = (bytes: Uint8Array) => Buffer.from(partDigest(bytes)).toString('hex');

function partOf(data: Buffer, partNumber: number): Buffer {
  const size = partSizeFor(data.length);
  return data.subarray((partNumber - 1) * size, Math.min(partNumber * size, data.length));
}

/** Calls on one API and bucket. */
function calls({ api, bucket }: Ctx) {
  const post = (path: string, json: unknown, key?: string) => api.call(path, { method: 'POST', json, ...(key ? { key } : {}) });

  async function setup(kind: 'upload' | 'download', request: Omit<TransferRequest, 'slipstream'>, onBucket = bucket): Promise<{ id: string; keyPrefix: string }> {
    const res = await post(`/files/${kind}_setup`, { transfer_requests: [{ transfer_request: { ...request, slipstream: { bucket: onBucket } } }] });
    expect(res.status).toBe(200);
    const entry = setupResponseSchema.parse(await body(res)).transfer_specs[0]!;
    if (!('transfer_spec' in entry)) throw new Error(`setup failed: ${entry.error.user_message}`);
    return { id: entry.transfer_spec.slipstream.transfer_id, keyPrefix: entry.transfer_spec.slipstream.key_prefix };
  }

  /** Signs, PUTs (with the signed Content-MD5) and records parts over HTTPS; returns their ETags. */
  async function sendParts(id: string, index: number, data: Buffer, partNumbers: number[]): Promise<string[]> {
    const signed = signedFilePartsSchema.parse(
      await body(await post(`/v1/transfers/${id}/files/${index}/parts`, { parts: partNumbers.map((n) => ({ partNumber: n, md5: md5Of(partOf(data, n)) })) })),
    );
    const etags: string[] = [];
    for (const part of signed.parts) {
      const bytes = partOf(data, part.partNumber);
      expect(part.sizeBytes).toBe(bytes.length);
      const put = await fetch(part.url, { method: 'PUT', headers: part.headers, body: new Uint8Array(bytes) });
      expect(put.status).toBe(200);
      const etag = put.headers.get('etag')!;
      const recorded = await post(`/v1/transfers/${id}/files/${index}/parts/${part.partNumber}`, { etag, sha256: sha256Of(bytes) });
      expect(recorded.status).toBe(200);
      expect(recordedPartSchema.parse(await body(recorded))).toMatchObject({ partNumber: part.partNumber, transport: 'http', sizeBytes: bytes.length });
      etags.push(etag);
    }
    return etags;
  }

  return { post, setup, sendParts };
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const rgw = inject('rgw');
const targets: S3Target[] = [inject('s3rver'), ...(rgw ? [rgw] : [])];

describe.each(targets)('an upload continued over HTTPS on $name', (target) => {
  let ctx: Ctx;
  beforeAll(async () => {
    ctx = await context(target);
  });

  it('finishes the multipart upload the engine began, sending only the parts it had not made durable', async () => {
    const { api, bucket } = ctx;
    const { post, setup, sendParts } = calls(ctx);
    const big = testBytes(20 * MiB + 123, 11); // parts of 8 + 8 + 4 MiB (+123 bytes)
    const small = testBytes(1000, 12);
    const empty = Buffer.alloc(0);
    const { id, keyPrefix } = await setup('upload', {
      paths: [
        { source: 'big.bin', size: big.length },
        { source: 'small.txt', destination: 'docs/small.txt', size: small.length },
        { source: 'empty.txt', size: 0 },
      ],
      destination_root: `/cont-${randomBytes(4).toString('hex')}`,
    });

    // The engine's upload sink receives the first 16 MiB, uploads and records parts 1 and 2, then the
    // link goes silent and the session dies (close() is what a crash leaves behind).
    const sink = new UploadSink({ s3: api.deps.s3, parts: api.deps.parts, transfers: api.deps.transfers, bucket, keyPrefix, transferId: id });
    sink.addFiles([{ index: 0, path: 'big.bin', size: big.length }]);
    await sink.resumeState();
    sink.write(0, big.subarray(0, 16 * MiB));
    await until(async () => (await api.deps.parts.partsOf(id, 0)).length === 2, 'the engine to record parts 1 and 2');
    await sink.close();
    const engineRecord = (await api.deps.parts.getFile(id, 0))!;

    const switched = await post(`/v1/transfers/${id}/transport`, { transport: 'http', reason: 'no UDP datagram for 5 s' });
    expect(switched.status).toBe(200);
    expect(transferSchema.parse(await body(switched))).toMatchObject({ transport: 'http', status: 'RUNNING', transportChanges: [{ transport: 'http', reason: 'no UDP datagram for 5 s' }] });

    // File 0: the engine's upload, parts 1 and 2 durable (not to be sent again), part 3 over HTTPS.
    const state = fileUploadStateSchema.parse(await body(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'big.bin', sizeBytes: big.length, sha256: checksumOf(big) })));
    expect(state).toMatchObject({ fileIndex: 0, key: `${keyPrefix}big.bin`, status: 'open', uploadId: engineRecord.uploadId, partSizeBytes: 8 * MiB, partCount: 3 });
    expect(state.parts.map((p) => [p.partNumber, p.transport, p.sha256])).toEqual([
      [1, 'udp', sha256Of(partOf(big, 1))],
      [2, 'udp', sha256Of(partOf(big, 2))],
    ]);
    const early = await post(`/v1/transfers/${id}/files/0/complete`, { sha256: checksumOf(big) });
    expect(await expectError(early, 400, 'MissingParts')).toMatch(/1 of 3 parts .* not recorded durable: 3$/);

    const signed = signedFilePartsSchema.parse(await body(await post(`/v1/transfers/${id}/files/0/parts`, { parts: [{ partNumber: 3, md5: md5Of(partOf(big, 3)) }] })));
    const url = new URL(signed.parts[0]!.url);
    expect(url.searchParams.get('X-Amz-SignedHeaders')).toBe('content-md5;host');
    // Storage that checks signatures and digests (RGW, AWS; s3rver checks neither) refuses a PUT that
    // declares another MD5 than the signed one, and a body that does not match the signed MD5.
    if (target.name === 'rgw') {
      const forged = await fetch(url, { method: 'PUT', headers: { 'content-md5': md5Of(Buffer.from('other')) }, body: new Uint8Array(partOf(big, 3)) });
      expect(forged.status).toBe(403);
      const corrupt = Buffer.from(partOf(big, 3));
      corrupt[0] = corrupt[0]! ^ 0xff;
      const damaged = await fetch(url, { method: 'PUT', headers: signed.parts[0]!.headers, body: new Uint8Array(corrupt) });
      expect(damaged.status).toBe(400);
      expect(await damaged.text()).toContain('BadDigest');
    }
    const [etag3] = await sendParts(id, 0, big, [3]);
    const again = await post(`/v1/transfers/${id}/files/0/parts/3`, { etag: etag3, sha256: sha256Of(partOf(big, 3)) });
    expect(again.status).toBe(200);
    await expectError(await post(`/v1/transfers/${id}/files/0/parts/3`, { etag: '"0123456789abcdef0123456789abcdef"', sha256: sha256Of(partOf(big, 3)) }), 409, 'PartMismatch');
    await expectError(await post(`/v1/transfers/${id}/files/0/parts/4`, { etag: etag3, sha256: sha256Of(partOf(big, 3)) }), 400, 'InvalidPartSize');

    const completed = await post(`/v1/transfers/${id}/files/0/complete`, { sha256: checksumOf(big) });
    expect(completed.status).toBe(200);
    expect(completedFileSchema.parse(await body(completed))).toMatchObject({ fileIndex: 0, key: `${keyPrefix}big.bin`, checksum: checksumOf(big) });
    expect((await readObject(target, bucket, `${keyPrefix}big.bin`)).equals(big)).toBe(true);
    const recorded = await api.deps.parts.partsOf(id, 0);
    expect(recorded.map((p) => [p.partNumber, p.transport ?? 'udp'])).toEqual([[1, 'udp'], [2, 'udp'], [3, 'http']]);
    expect((await api.deps.parts.getFile(id, 0))).toMatchObject({ status: 'committed', checksum: checksumOf(big) });
    // Completing again is answered from the record.
    expect((await post(`/v1/transfers/${id}/files/0/complete`, { sha256: checksumOf(big) })).status).toBe(200);
    await expectError(await post(`/v1/transfers/${id}/files/0/complete`, { sha256: checksumOf(small) }), 422, 'ChecksumMismatch');
    const committedState = fileUploadStateSchema.parse(await body(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'big.bin', sizeBytes: big.length, sha256: checksumOf(big) })));
    expect(committedState.status).toBe('committed');

    // File 1: no engine record; a one-part upload begun here, with the checksum as metadata.
    const smallState = fileUploadStateSchema.parse(
      await body(await post(`/v1/transfers/${id}/files/1/upload`, { path: 'docs/small.txt', sizeBytes: small.length, sha256: checksumOf(small) })),
    );
    expect(smallState).toMatchObject({ status: 'open', partCount: 1, partSizeBytes: 8 * MiB, parts: [] });
    await expectError(await post(`/v1/transfers/${id}/files/1/upload`, { path: 'docs/other.txt', sizeBytes: small.length, sha256: checksumOf(small) }), 409, 'FileMismatch');
    await sendParts(id, 1, small, [1]);
    expect((await post(`/v1/transfers/${id}/files/1/complete`, { sha256: checksumOf(small) })).status).toBe(200);

    // File 2: 0 bytes, no multipart upload: complete stores it.
    const emptyState = fileUploadStateSchema.parse(await body(await post(`/v1/transfers/${id}/files/2/upload`, { path: 'empty.txt', sizeBytes: 0, sha256: checksumOf(empty) })));
    expect(emptyState).toMatchObject({ uploadId: null, partCount: 1, parts: [] });
    expect((await post(`/v1/transfers/${id}/files/2/complete`, { sha256: checksumOf(empty) })).status).toBe(200);

    for (const [path, data] of [['docs/small.txt', small], ['empty.txt', empty]] as const) {
      expect((await readObject(target, bucket, keyPrefix + path)).equals(data)).toBe(true);
      const head = await api.deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: keyPrefix + path }));
      expect(head.Metadata?.[checksumMetadataKey]).toBe(checksumOf(data));
    }

    const short = await post(`/v1/transfers/${id}/finish`, { files: 4 });
    expect(await expectError(short, 409, 'FilesIncomplete')).toContain('3: not started');
    const finished = transferSchema.parse(await body(await post(`/v1/transfers/${id}/finish`, { files: 3 })));
    expect(finished).toMatchObject({ status: 'COMPLETED', transport: 'http', bytesTransferred: big.length + small.length });
    const shown = transferSchema.parse(await body(await api.call(`/v1/transfers/${id}`)));
    expect(shown.endedAt).not.toBeNull();
    expect(shown.transportChanges).toEqual([{ transport: 'http', at: expect.any(String), reason: 'no UDP datagram for 5 s' }]);
    await expectError(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'big.bin', sizeBytes: big.length, sha256: checksumOf(big) }), 409, 'TransferNotActive');
  });

  it('refuses a file whose parts do not add up to its checksum: 422, the upload aborted, nothing stored', async () => {
    const { api, bucket } = ctx;
    const { post, setup, sendParts } = calls(ctx);
    const data = testBytes(9 * MiB, 21); // 8 MiB + 1 MiB
    const { id, keyPrefix } = await setup('upload', { paths: [{ source: 'bad.bin', size: data.length }], destination_root: '/mismatch' });
    const state = fileUploadStateSchema.parse(await body(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'bad.bin', sizeBytes: data.length, sha256: checksumOf(data) })));
    await sendParts(id, 0, data, [1]);
    // Part 2 reaches S3 intact, but the client reports another SHA-256 for it.
    const signed = signedFilePartsSchema.parse(await body(await post(`/v1/transfers/${id}/files/0/parts`, { parts: [{ partNumber: 2, md5: md5Of(partOf(data, 2)) }] })));
    const put = await fetch(signed.parts[0]!.url, { method: 'PUT', headers: signed.parts[0]!.headers, body: new Uint8Array(partOf(data, 2)) });
    await post(`/v1/transfers/${id}/files/0/parts/2`, { etag: put.headers.get('etag')!, sha256: sha256Of(Buffer.from('not these bytes')) });

    const refused = await post(`/v1/transfers/${id}/files/0/complete`, { sha256: checksumOf(data) });
    expect(await expectError(refused, 422, 'ChecksumMismatch')).toMatch(/not stored/);
    await expect(api.deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${keyPrefix}bad.bin` }))).rejects.toMatchObject({ name: 'NotFound' });
    const listing = await api.deps.s3.send(new ListPartsCommand({ Bucket: bucket, Key: `${keyPrefix}bad.bin`, UploadId: state.uploadId! })).catch((error: Error) => error);
    expect(['NoSuchUpload', 'NoSuchKey']).toContain((listing as Error).name); // aborted (RGW says NoSuchKey)
    expect(await api.deps.parts.getFile(id, 0)).toMatchObject({ status: 'failed' });
    await expectError(await post(`/v1/transfers/${id}/files/0/parts`, { parts: [{ partNumber: 1, md5: md5Of(partOf(data, 1)) }] }), 404, 'NoSuchUpload');

    // Starting the file again gives a fresh upload with nothing durable in it.
    const fresh = fileUploadStateSchema.parse(await body(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'bad.bin', sizeBytes: data.length, sha256: checksumOf(data) })));
    expect(fresh.uploadId).not.toBe(state.uploadId);
    expect(fresh.parts).toEqual([]);
    await sendParts(id, 0, data, [1, 2]);
    expect((await post(`/v1/transfers/${id}/files/0/complete`, { sha256: checksumOf(data) })).status).toBe(200);
    expect((await readObject(target, bucket, `${keyPrefix}bad.bin`)).equals(data)).toBe(true);
  });

});

describe('continuation rules', () => {
  let ctx: Ctx;
  beforeAll(async () => {
    ctx = await context(inject('s3rver'));
  });

  it('keeps the last transport switches, and refuses what the transfer does not allow', async () => {
    const { api, bucket, target } = ctx;
    const { post, setup } = calls(ctx);
    const { id } = await setup('upload', { paths: [{ source: 'x.bin', size: 10 }], destination_root: '/flaps' });
    for (let i = 0; i < maxTransportChanges + 2; i += 1) {
      const res = await post(`/v1/transfers/${id}/transport`, { transport: i % 2 === 0 ? 'http' : 'udp', reason: `switch ${i}` });
      expect(res.status).toBe(200);
    }
    const shown = transferSchema.parse(await body(await api.call(`/v1/transfers/${id}`)));
    expect(shown.transportChanges).toHaveLength(maxTransportChanges);
    expect(shown.transportChanges[0]!.reason).toBe('switch 2');
    expect(shown).toMatchObject({ transport: 'high-speed', status: 'RUNNING' });

    await expectError(await post(`/v1/transfers/${id}/downloads`, { paths: ['x.bin'] }), 409, 'WrongDirection');
    await expectError(await post(`/v1/transfers/${id}/files/0/upload`, { path: '../x.bin', sizeBytes: 10, sha256: checksumOf(Buffer.alloc(10)) }), 400, 'ValidationError');
    await expectError(await post(`/v1/transfers/${id}/files/0/parts`, { parts: [{ partNumber: 1, md5: md5Of(Buffer.alloc(10)) }] }), 404, 'NoSuchUpload');

    // Another bucket's key never learns the transfer exists; a read-only key may not write.
    const otherBucket = await createBucket(target, { prefix: 'other' });
    const outsider = await api.keyWith([otherBucket], ['read', 'write']);
    await expectError(await post(`/v1/transfers/${id}/transport`, { transport: 'http', reason: 'x' }, outsider), 404, 'NoSuchTransfer');
    const reader = await api.keyWith([bucket], ['read']);
    await expectError(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'x.bin', sizeBytes: 10, sha256: checksumOf(Buffer.alloc(10)) }, reader), 403, 'Forbidden');

    expect((await post(`/v1/transfers/${id}/cancel`, {})).status).toBe(200);
    await expectError(await post(`/v1/transfers/${id}/transport`, { transport: 'http', reason: 'x' }), 409, 'TransferNotActive');
  });

  it('refuses with HttpFallbackDisabled where the bucket preferences disabled HTTP fallback for the spec', async () => {
    const { api, bucket, target } = ctx;
    const { post, setup } = calls(ctx);
    const locked = await createBucket(target, { prefix: 'nofb' });
    expect((await api.call(`/v1/buckets/${locked}/preferences`, { method: 'PATCH', json: { httpFallback: 'false' } })).status).toBe(200);
    const { id } = await setup('upload', { paths: [{ source: 'a.bin', size: 5 }] }, locked);
    expect(await expectError(await post(`/v1/transfers/${id}/transport`, { transport: 'http', reason: 'udp blocked' }), 400, 'HttpFallbackDisabled')).toMatch(/http_fallback false/);
    await expectError(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'a.bin', sizeBytes: 5, sha256: checksumOf(Buffer.alloc(5)) }), 400, 'HttpFallbackDisabled');
    // A /v1/fallback upload is a transfer of its own kind, not one to continue.
    const single = (await body(await post('/v1/fallback/uploads', { bucket, key: 'single.bin', sizeBytes: 5 }))) as { transferId: string };
    await expectError(await post(`/v1/transfers/${single.transferId}/finish`, { files: 1 }), 400, 'HttpFallbackDisabled');
  });

  it('presigns ranged GETs for download paths, objects and folders, with the stored checksum', async () => {
    const { api, bucket, target } = ctx;
    const { post, setup } = calls(ctx);
    const root = `dl-${randomBytes(4).toString('hex')}`;
    const a = testBytes(3 * MiB + 7, 31);
    const b = testBytes(1234, 32);
    const s3 = s3For(target);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${root}/a.bin`, Body: a, Metadata: { [checksumMetadataKey]: checksumOf(a) } }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${root}/folder/b.txt`, Body: b }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${root}/folder/sub/`, Body: new Uint8Array(0) }));
    const { id } = await setup('download', { paths: [{ source: 'a.bin' }, { source: 'folder/' }], source_root: `/${root}` });

    const reader = await api.keyWith([bucket], ['read']);
    const res = await post(`/v1/transfers/${id}/downloads`, { paths: ['a.bin', 'folder/', 'a.bin'] }, reader);
    expect(res.status).toBe(200);
    const urls = downloadUrlsSchema.parse(await body(res));
    expect(urls.files.map((f) => [f.path, f.key, f.sizeBytes, f.sha256])).toEqual([
      ['a.bin', `${root}/a.bin`, a.length, checksumOf(a)],
      ['folder/b.txt', `${root}/folder/b.txt`, b.length, null],
    ]);
    const ranged = await fetch(urls.files[0]!.url, { headers: { range: 'bytes=1048576-1048675' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(a.subarray(MiB, MiB + 100))).toBe(true);
    const whole = await fetch(urls.files[1]!.url);
    expect(Buffer.from(await whole.arrayBuffer()).equals(b)).toBe(true);
    expect(urls.files[1]!.etag?.replaceAll('"', '')).toBe(createHash('md5').update(b).digest('hex'));
    expect((transferSchema.parse(await body(await api.call(`/v1/transfers/${id}`))).status)).toBe('RUNNING');

    expect(await expectError(await post(`/v1/transfers/${id}/downloads`, { paths: ['nope.bin'] }), 404, 'NoSuchKey')).toContain('nope.bin');
    await expectError(await post(`/v1/transfers/${id}/downloads`, { paths: ['../escape'] }), 400, 'InvalidObjectKey');
    await expectError(await post(`/v1/transfers/${id}/files/0/upload`, { path: 'a.bin', sizeBytes: 1, sha256: checksumOf(Buffer.alloc(1)) }), 409, 'WrongDirection');
    const outsider = await api.keyWith([await createBucket(target, { prefix: 'other' })], ['read']);
    await expectError(await post(`/v1/transfers/${id}/downloads`, { paths: ['a.bin'] }, outsider), 404, 'NoSuchTransfer');

    expect((await post(`/v1/transfers/${id}/transport`, { transport: 'http', reason: 'udp blocked' }, reader)).status).toBe(200);
    const finished = transferSchema.parse(await body(await post(`/v1/transfers/${id}/finish`, { files: 2 }, reader)));
    expect(finished).toMatchObject({ status: 'COMPLETED', transport: 'http', transportChanges: [{ transport: 'http', reason: 'udp blocked' }] });
  });
});
