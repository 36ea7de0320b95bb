import { randomUUID } from 'node:crypto';
import { HeadObjectCommand, ListPartsCommand, type S3Client } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createDocumentClient } from '../../core/clients';
import { PartRepository } from '../../core/state/parts';
import { newTransfer } from '../../core/state/transfers';
import { checksumMetadataKey } from '../../contracts';
import { ChecksumMismatchError, FlowControlError, UploadSink, type SinkFile } from '../../engine-service/upload-sink';
import { checksumOf, MiB, partSizeFor } from '../../protocol/transfer';
import type { S3Target } from '../support/global-setup';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket, readObject, s3For, testBytes } from '../support/s3';

const KiB = 1024;
const chunkBytes = 1400;

/** Deterministic shuffle (xorshift32), so a failing order can be replayed. */
function shuffled<T>(items: T[], seed: number): T[] {
  let x = seed >>> 0 || 1;
  for (let i = items.length - 1; i > 0; i -= 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** [start, end) cut into datagram-sized chunks. */
function chunksOf(start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  for (let at = start; at < end; at += chunkBytes) out.push([at, Math.min(at + chunkBytes, end)]);
  return out;
}

/** The complement of `ranges` within [0, total). */
function missing(ranges: [number, number][], total: number): [number, number][] {
  const out: [number, number][] = [];
  let at = 0;
  for (const [start, end] of ranges) {
    if (start > at) out.push([at, start]);
    at = Math.max(at, end);
  }
  if (at < total) out.push([at, total]);
  return out;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The real client for the target, counting the S3 operations it sends (per command, per part number). */
function countingS3(target: S3Target, counts: Map<string, number>): S3Client {
  const s3 = s3For(target);
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { PartNumber?: number };
      const name = context.commandName ?? 'unknown';
      const label = input.PartNumber !== undefined ? `${name}#${input.PartNumber}` : name;
      counts.set(label, (counts.get(label) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'countOperations' },
  );
  return s3;
}

const rgw = inject('rgw');
const targets: S3Target[] = [inject('s3rver'), ...(rgw ? [rgw] : [])];

describe.each(targets)('UploadSink on $name', (target) => {
  let api: TestApi;
  let parts: PartRepository;
  let bucket: string;

  beforeAll(async () => {
    api = await createTestApi(target);
    parts = new PartRepository(createDocumentClient(api.deps.config), api.deps.config.tableName);
    bucket = await createBucket(target, { prefix: 'sink' });
  });

  async function newSink(
    options: { transferId?: string; s3?: S3Client; bucket?: string; maxBufferedBytes?: number; bytesTotal?: number; onFileError?: (i: number, e: Error) => void } = {},
  ) {
    const transferId = options.transferId ?? randomUUID();
    if (!options.transferId) {
      await api.deps.transfers.create(
        newTransfer(
          { id: transferId, bucket, direction: 'upload', transport: 'high-speed', status: 'QUEUED', keyPrefix: `${transferId}/`, files: 1, bytesTotal: options.bytesTotal ?? null, ownerKeyId: 'k' },
          new Date(),
        ),
      );
    }
    const sink = new UploadSink({
      s3: options.s3 ?? api.deps.s3,
      parts,
      transfers: api.deps.transfers,
      bucket: options.bucket ?? bucket,
      keyPrefix: `${transferId}/`,
      transferId,
      ...(options.maxBufferedBytes ? { maxBufferedBytes: options.maxBufferedBytes } : {}),
      ...(options.onFileError ? { onFileError: options.onFileError } : {}),
    });
    return { sink, transferId };
  }

  function writeRanges(sink: UploadSink, stream: Uint8Array, ranges: [number, number][], seed: number): void {
    const all = ranges.flatMap(([start, end]) => chunksOf(start, end));
    for (const [start, end] of shuffled(all, seed)) sink.write(start, stream.subarray(start, end));
  }

  it('stores three files written in shuffled 1400-byte chunks, byte-exact, with progress on the transfer', async () => {
    const datas = [testBytes(0, 1), testBytes(100 * KiB, 2), testBytes(20 * MiB + 5, 3)];
    const files: SinkFile[] = [
      { index: 0, path: 'empty.bin', size: 0 },
      { index: 1, path: 'dir/small.bin', size: datas[1]!.length },
      // Declared before the bytes: the multipart upload carries it as metadata.
      { index: 2, path: 'dir/big.bin', size: datas[2]!.length, sha256: checksumOf(datas[2]!) },
    ];
    const stream = Buffer.concat(datas);
    const { sink, transferId } = await newSink({ bytesTotal: stream.length });
    sink.addFiles(files);
    expect(await sink.resumeState()).toEqual([]);
    writeRanges(sink, stream, [[0, stream.length]], 7);
    await Promise.all(datas.map((data, i) => sink.commitFile(i, checksumOf(data))));

    for (const [i, data] of datas.entries()) {
      const key = `${transferId}/${files[i]!.path}`;
      expect((await readObject(target, bucket, key)).equals(data)).toBe(true);
      const head = await api.deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.Metadata?.[checksumMetadataKey]).toBe(checksumOf(data));
    }
    const records = await parts.files(transferId);
    expect(records.map((r) => [r.fileIndex, r.status, r.checksum, r.uploadId === null])).toEqual(
      datas.map((data, i) => [i, 'committed', checksumOf(data), i < 2]),
    );
    expect((await parts.partsOf(transferId, 2)).map((p) => [p.partNumber, p.sizeBytes])).toEqual([
      [1, 8 * MiB],
      [2, 8 * MiB],
      [3, 4 * MiB + 5],
    ]);
    expect(sink.bufferedBytes).toBe(0);

    await sink.flushProgress();
    const transfer = await api.deps.transfers.get(transferId);
    expect(transfer).toMatchObject({ status: 'RUNNING', bytesTransferred: stream.length });
    // An ended transfer stays ended: progress no longer touches it, and a new session refuses it.
    await api.deps.transfers.finish(transferId, 'COMPLETED', new Date());
    await sink.flushProgress();
    expect(await api.deps.transfers.get(transferId)).toMatchObject({ status: 'COMPLETED' });
    const { sink: late } = await newSink({ transferId });
    late.addFiles(files);
    await expect(late.resumeState()).rejects.toThrow(/COMPLETED/);
  });

  it('never accepts more than maxBufferedBytes beyond the lowest byte not yet durable', async () => {
    const maxBufferedBytes = 24 * MiB;
    const data = testBytes(64 * MiB, 4);
    const partSizeBytes = partSizeFor(data.length);
    const { sink, transferId } = await newSink({ maxBufferedBytes });
    sink.addFiles([{ index: 0, path: 'large.bin', size: data.length }]);
    await sink.resumeState();
    expect(() => sink.write(maxBufferedBytes - 10, data.subarray(maxBufferedBytes - 10, maxBufferedBytes + 10))).toThrow(FlowControlError);

    let pending = chunksOf(0, data.length);
    let maxBuffered = 0;
    let windows = 0;
    while (pending.length > 0) {
      const limit = sink.receiveLimit();
      // The table's view, read after the limit: durable parts only grow, so this bound is safe.
      const recorded = new Set((await parts.partsOf(transferId, 0)).map((p) => p.partNumber));
      let lowest = 0;
      while (recorded.has(lowest / partSizeBytes + 1)) lowest += partSizeBytes;
      expect(limit).toBeLessThanOrEqual(lowest + maxBufferedBytes);

      const [now, later] = [pending.filter(([, end]) => end <= limit), pending.filter(([, end]) => end > limit)];
      for (const [start, end] of shuffled(now, windows + 11)) {
        sink.write(start, data.subarray(start, end));
        maxBuffered = Math.max(maxBuffered, sink.bufferedBytes);
      }
      pending = later;
      windows += 1;
      if (pending.length > 0) await until(() => sink.receiveLimit() > limit, 'the receive window to move');
    }
    await sink.commitFile(0, checksumOf(data));
    expect(maxBuffered).toBeLessThanOrEqual(maxBufferedBytes + partSizeBytes);
    expect(windows).toBeGreaterThan(2);
    expect((await readObject(target, bucket, `${transferId}/large.bin`)).equals(data)).toBe(true);
  });

  it('lets a part larger than maxBufferedBytes complete', async () => {
    const small = testBytes(1000, 12);
    const hugeBytes = 200 * 1024 * MiB; // 200 GiB: 21 MiB parts
    const { sink } = await newSink({ maxBufferedBytes: 4 * MiB });
    sink.addFiles([
      { index: 0, path: 'small', size: small.length },
      { index: 1, path: 'huge', size: hugeBytes },
    ]);
    await sink.resumeState();
    expect(sink.receiveLimit()).toBe(4 * MiB);
    sink.write(0, small);
    await sink.commitFile(0, checksumOf(small));
    // The window now starts at the huge file's first part, larger than maxBufferedBytes.
    expect(partSizeFor(hugeBytes)).toBe(21 * MiB);
    expect(sink.receiveLimit()).toBe(small.length + 21 * MiB);
    await sink.close();
  });

  it('resumes after a crash on a new sink: same multipart upload, no recorded part uploaded twice', async () => {
    const data = testBytes(30 * MiB, 5);
    const files = [{ index: 0, path: 'resumed.bin', size: data.length }];
    const counts = new Map<string, number>();
    const first = await newSink({ s3: countingS3(target, counts) });
    const { transferId } = first;
    first.sink.addFiles(files);
    expect(await first.sink.resumeState()).toEqual([]);
    // Parts 1–3 whole and a little of part 4; then a crash while part 3 may be in flight.
    writeRanges(first.sink, data, [[0, 24 * MiB + 100 * KiB]], 21);
    await until(async () => (await parts.partsOf(transferId, 0)).length >= 2, 'two durable parts');
    await first.sink.close();
    expect(first.sink.bufferedBytes).toBe(0);
    const uploadId = (await parts.getFile(transferId, 0))!.uploadId;
    expect(uploadId).toBeTruthy();

    const recorded = (await parts.partsOf(transferId, 0)).map((p) => p.partNumber);
    const { sink } = await newSink({ transferId, s3: countingS3(target, counts) });
    sink.addFiles(files);
    const have = await sink.resumeState();
    // Parts finish in any order, so the durable ranges may have a hole.
    const expected: [number, number][] = [];
    for (const n of recorded) {
      const [start, end] = [(n - 1) * 8 * MiB, Math.min(n * 8 * MiB, data.length)];
      const last = expected[expected.length - 1];
      if (last && last[1] === start) last[1] = end;
      else expected.push([start, end]);
    }
    expect(have).toEqual(expected);
    expect(have.reduce((sum, [start, end]) => sum + end - start, 0)).toBeGreaterThanOrEqual(16 * MiB);
    // The window, but never past the manifest's end.
    expect(sink.receiveLimit()).toBe(Math.min(data.length, (have[0]![0] === 0 ? have[0]![1] : 0) + 128 * MiB));

    writeRanges(sink, data, missing(have, data.length), 22);
    await sink.commitFile(0, checksumOf(data));
    expect((await readObject(target, bucket, `${transferId}/resumed.bin`)).equals(data)).toBe(true);
    expect((await parts.getFile(transferId, 0))!).toMatchObject({ status: 'committed', uploadId });
    expect(counts.get('CreateMultipartUploadCommand')).toBe(1);
    // A session that finds the file committed answers for it without touching S3.
    const { sink: third } = await newSink({ transferId, s3: countingS3(target, counts) });
    third.addFiles(files);
    expect(await third.resumeState()).toEqual([[0, data.length]]);
    await third.commitFile(0, checksumOf(data));
    await expect(third.commitFile(0, checksumOf(testBytes(30 * MiB, 6)))).rejects.toThrow(/already stored with checksum/);
    for (const partNumber of recorded) expect({ partNumber, uploads: counts.get(`UploadPartCommand#${partNumber}`) }).toEqual({ partNumber, uploads: 1 });
    for (const partNumber of [1, 2, 3, 4]) expect(counts.get(`UploadPartCommand#${partNumber}`)).toBeGreaterThanOrEqual(1);
  });

  it('refuses a file whose checksum does not match: ChecksumMismatchError, no object, upload aborted', async () => {
    const big = testBytes(9 * MiB, 6);
    const small = testBytes(3000, 7);
    const { sink, transferId } = await newSink();
    sink.addFiles([
      { index: 0, path: 'bad-big.bin', size: big.length },
      { index: 1, path: 'bad-small.bin', size: small.length },
    ]);
    await sink.resumeState();
    const stream = Buffer.concat([big, small]);
    writeRanges(sink, stream, [[0, stream.length]], 31);
    const wrong = checksumOf(testBytes(9 * MiB, 99));
    const error = await sink.commitFile(0, wrong).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect((error as Error).message).toMatch(/file 0 \(.*bad-big\.bin\): the bytes received have checksum [0-9a-f]{64}, the sender declared [0-9a-f]{64}; the object was not stored/);
    await expect(sink.commitFile(0, checksumOf(big))).rejects.toBeInstanceOf(ChecksumMismatchError);
    await expect(sink.commitFile(1, wrong)).rejects.toBeInstanceOf(ChecksumMismatchError);

    for (const name of ['bad-big.bin', 'bad-small.bin']) {
      const head = api.deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${transferId}/${name}` }));
      await expect(head).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    }
    const record = (await parts.getFile(transferId, 0))!;
    expect(record).toMatchObject({ status: 'failed' });
    expect((await parts.getFile(transferId, 1))!).toMatchObject({ status: 'failed', uploadId: null });
    const list = api.deps.s3.send(new ListPartsCommand({ Bucket: bucket, Key: `${transferId}/bad-big.bin`, UploadId: record.uploadId! }));
    await expect(list).rejects.toMatchObject({ name: expect.stringMatching(/^NoSuch(Upload|Key)$/) }); // RGW: NoSuchKey
    expect(sink.bufferedBytes).toBe(0);
  });

  it('cancel aborts the open multipart upload and fails the file', async () => {
    const data = testBytes(12 * MiB, 8);
    const { sink, transferId } = await newSink();
    sink.addFiles([{ index: 0, path: 'canceled.bin', size: data.length }]);
    await sink.resumeState();
    writeRanges(sink, data, [[0, 9 * MiB]], 41);
    await until(async () => (await parts.partsOf(transferId, 0)).length === 1, 'one durable part');
    await sink.cancel();
    const record = (await parts.getFile(transferId, 0))!;
    expect(record).toMatchObject({ status: 'failed', error: 'canceled' });
    const list = api.deps.s3.send(new ListPartsCommand({ Bucket: bucket, Key: `${transferId}/canceled.bin`, UploadId: record.uploadId! }));
    await expect(list).rejects.toMatchObject({ name: expect.stringMatching(/^NoSuch(Upload|Key)$/) }); // RGW: NoSuchKey
  });

  it('turns an S3 failure into a file error, never an unhandled rejection', async () => {
    const data = testBytes(9 * MiB, 9);
    const errors: [number, string][] = [];
    // A bucket that does not exist: CreateMultipartUpload fails after the SDK's retries.
    const { sink } = await newSink({ bucket: `missing-${randomUUID().slice(0, 8)}`, onFileError: (i, e) => errors.push([i, e.name]) });
    sink.addFiles([{ index: 0, path: 'x.bin', size: data.length }]);
    await sink.resumeState();
    writeRanges(sink, data, [[0, data.length]], 51);
    await expect(sink.commitFile(0, checksumOf(data))).rejects.toMatchObject({ name: 'NoSuchBucket' });
    expect(errors).toEqual([[0, 'NoSuchBucket']]);
    expect(sink.bufferedBytes).toBe(0);
    expect(sink.receiveLimit()).toBe(data.length);
  });
});

describe('PartRepository', () => {
  it('pages through more parts than one Query answers (1 MB) and keeps files apart', async () => {
    const api = await createTestApi();
    const db = createDocumentClient(api.deps.config);
    let queries = 0;
    db.middlewareStack.add((next, context) => (args) => {
      if (context.commandName === 'QueryCommand') queries += 1;
      return next(args);
    }, { step: 'initialize', name: 'countQueries' });
    const parts = new PartRepository(db, api.deps.config.tableName);
    const transferId = randomUUID();
    // ~500-byte items (AWS upload ids are long), so 2,500 of them span two 1 MB Query pages.
    const uploadId = 'u'.repeat(200);
    const partCount = 2500;
    const now = new Date();
    const numbers = Array.from({ length: partCount }, (_, i) => i + 1);
    for (let i = 0; i < numbers.length; i += 100) {
      await Promise.all(
        numbers.slice(i, i + 100).map((partNumber) =>
          parts.recordPart({ transferId, fileIndex: 7, partNumber, etag: `"${'e'.repeat(32)}"`, sizeBytes: 8 * MiB, sha256: 'a'.repeat(64), uploadId }, now),
        ),
      );
    }
    await parts.recordPart({ transferId, fileIndex: 8, partNumber: 1, etag: '"x"', sizeBytes: 1, sha256: 'b'.repeat(64), uploadId: 'v' }, now);
    queries = 0;
    const of7 = await parts.partsOf(transferId, 7);
    expect(queries).toBeGreaterThan(1);
    expect(of7.map((p) => p.partNumber)).toEqual(numbers);
    expect(of7[0]).toEqual({ transferId, fileIndex: 7, partNumber: 1, etag: `"${'e'.repeat(32)}"`, sizeBytes: 8 * MiB, sha256: 'a'.repeat(64), uploadId, recordedAt: now.toISOString() });
    expect((await parts.allParts(transferId)).length).toBe(partCount + 1);
    expect(await parts.files(transferId)).toEqual([]);
  });
});

