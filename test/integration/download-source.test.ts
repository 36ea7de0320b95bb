import { randomUUID } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { NoSuchPathError, TooManyFilesError, resolveDownloadPaths, type ResolvedFile } from '../../core/download-paths';
import { DownloadSource, ObjectChangedError } from '../../engine-service/download-source';
import { RangeSet } from '../../protocol/ranges';
import { checksumOf, MiB } from '../../protocol/transfer';
import type { S3Target } from '../support/global-setup';
import { createBucket, s3For, testBytes } from '../support/s3';

const KiB = 1024;
const datagramBytes = 1400;

/** xorshift32, so a failing order can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A receiver on a lossy, reordering link: each round the sender reads what the source has for every
 * byte not yet acknowledged, the link shuffles the datagrams and drops some, the receiver keeps the rest
 * and acknowledges them (release). Lost bytes are read again later, as a retransmission would.
 */
async function receiveAll(source: DownloadSource, signal: { readable: number }, totalBytes: number, skipped: [number, number][], seed: number) {
  const random = prng(seed);
  const received = new Uint8Array(totalBytes);
  const done = new RangeSet();
  for (const [start, end] of skipped) done.add(start, end);
  let maxBufferedBytes = 0;
  const deadline = Date.now() + 30_000;
  while (!done.covers(0, totalBytes)) {
    const seen = signal.readable;
    const batch: [number, Uint8Array][] = [];
    let at = 0;
    for (const [start, end] of [...done, [totalBytes, totalBytes] as [number, number]]) {
      for (; at < start; ) {
        const bytes = source.read(at, Math.min(datagramBytes, start - at));
        if (!bytes) break;
        batch.push([at, bytes.slice()]);
        at += bytes.length;
      }
      at = end;
    }
    for (const [offset, bytes] of shuffle(batch, random)) {
      if (random() < 0.1) continue; // lost
      received.set(bytes, offset);
      done.add(offset, offset + bytes.length);
      source.release(offset, offset + bytes.length);
    }
    maxBufferedBytes = Math.max(maxBufferedBytes, source.bufferedBytes);
    if (batch.length === 0) {
      while (signal.readable === seen) {
        if (Date.now() > deadline) throw new Error('no new bytes became readable');
        await sleep(2);
      }
    }
  }
  return { received, maxBufferedBytes };
}

const rgw = inject('rgw');
const targets: S3Target[] = [inject('s3rver'), ...(rgw ? [rgw] : [])];

describe.each(targets)('DownloadSource on $name', (target) => {
  const s3 = s3For(target);
  let bucket: string;
  const prefix = `${randomUUID()}/`;
  const objects: Record<string, Buffer> = {
    'dl/a-empty.bin': testBytes(0, 1),
    'dl/b-small.bin': testBytes(100 * KiB, 2),
    'dl/sub/c-big.bin': testBytes(20 * MiB + 5, 3),
    'dlx.bin': testBytes(10, 4),
    'single.bin': testBytes(5000, 5),
  };

  beforeAll(async () => {
    bucket = await createBucket(target, { prefix: 'src' });
    for (const [path, body] of Object.entries(objects)) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: prefix + path, Body: body }));
    }
  });

  it('resolves exact objects and prefixes to files relative to the key prefix', async () => {
    const files = await resolveDownloadPaths(s3, bucket, prefix, ['dl/', 'single.bin', 'dl/b-small.bin']);
    expect(files.map(({ index, path, key, size }) => ({ index, path, key, size }))).toEqual([
      { index: 0, path: 'dl/a-empty.bin', key: `${prefix}dl/a-empty.bin`, size: 0 },
      { index: 1, path: 'dl/b-small.bin', key: `${prefix}dl/b-small.bin`, size: 100 * KiB },
      { index: 2, path: 'dl/sub/c-big.bin', key: `${prefix}dl/sub/c-big.bin`, size: 20 * MiB + 5 },
      { index: 3, path: 'single.bin', key: `${prefix}single.bin`, size: 5000 },
    ]);
    expect(files.every((f) => typeof f.etag === 'string')).toBe(true);
    // No exact object `dl`: a folder, and `dlx.bin` is not in it.
    expect((await resolveDownloadPaths(s3, bucket, prefix, ['dl'])).map((f) => f.path)).toEqual(['dl/a-empty.bin', 'dl/b-small.bin', 'dl/sub/c-big.bin']);
    await expect(resolveDownloadPaths(s3, bucket, prefix, ['nothing/here'])).rejects.toBeInstanceOf(NoSuchPathError);
    await expect(resolveDownloadPaths(s3, bucket, prefix, ['dl/'], { maxFiles: 2 })).rejects.toBeInstanceOf(TooManyFilesError);
  });

  it('lists page after page', async () => {
    const many = `${randomUUID()}/`;
    const keys = Array.from({ length: 25 }, (_, i) => `${many}f/${String(i).padStart(4, '0')}`);
    await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' }))));
    const files = await resolveDownloadPaths(s3, bucket, many, ['f/'], { keysPerPage: 10 });
    expect(files.map((f) => [f.index, f.path, f.size])).toEqual(keys.map((key, i) => [i, key.slice(many.length), 1]));
  });

  async function streamOf(files: ResolvedFile[]): Promise<Buffer> {
    return Buffer.concat(files.map((f) => objects[f.path]!));
  }

  it('streams every file in order with bounded read-ahead, delivering byte-exact data and checksums', async () => {
    const files = await resolveDownloadPaths(s3, bucket, prefix, ['dl/', 'single.bin']);
    const expected = await streamOf(files);
    const readAheadBytes = 4 * MiB;
    const signal = { readable: 0 };
    const source = new DownloadSource({ s3, bucket, files, readAheadBytes, chunkBytes: 256 * KiB, onReadable: () => (signal.readable += 1) });
    const { received, maxBufferedBytes } = await receiveAll(source, signal, expected.length, [], 61);
    expect(Buffer.from(received).equals(expected)).toBe(true);
    expect(maxBufferedBytes).toBeLessThanOrEqual(readAheadBytes);
    expect(files.map((f) => source.checksum(f.index))).toEqual(files.map((f) => checksumOf(objects[f.path]!)));
    expect(source.bufferedBytes).toBe(0);
    source.close();
  });

  it('skips what a resuming receiver holds, yet checksums whole files', async () => {
    const files = await resolveDownloadPaths(s3, bucket, prefix, ['dl/']);
    const expected = await streamOf(files);
    const big = 100 * KiB; // stream start of the big file
    const skipped: [number, number][] = [
      [0, 100 * KiB], // the whole small file
      [big + 3 * MiB, big + 12 * MiB], // across the big file's first part boundary
    ];
    const signal = { readable: 0 };
    const source = new DownloadSource({ s3, bucket, files, readAheadBytes: 8 * MiB, onReadable: () => (signal.readable += 1) });
    source.skip(skipped);
    expect(source.read(10, 100)).toBeUndefined();
    const { received, maxBufferedBytes } = await receiveAll(source, signal, expected.length, skipped, 62);
    const missing = new RangeSet();
    missing.add(0, expected.length);
    for (const [start, end] of skipped) missing.remove(start, end);
    for (const [start, end] of missing) expect(Buffer.from(received.subarray(start, end)).equals(expected.subarray(start, end))).toBe(true);
    expect(received.subarray(big + 3 * MiB, big + 12 * MiB).every((b) => b === 0)).toBe(true);
    expect(maxBufferedBytes).toBeLessThanOrEqual(8 * MiB);
    expect(files.map((f) => source.checksum(f.index))).toEqual(files.map((f) => checksumOf(objects[f.path]!)));
    source.close();
  });

  it('fails a file whose object changes during the download, and goes on with the others', async () => {
    const files = await resolveDownloadPaths(s3, bucket, prefix, ['dl/sub/c-big.bin', 'single.bin']);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}dl/sub/c-big.bin`, Body: testBytes(20 * MiB + 5, 99) }));
    const errors: number[] = [];
    const source = new DownloadSource({ s3, bucket, files, onFileError: (index) => errors.push(index) });
    const start = files[0]!.size; // where single.bin begins in the stream
    for (let i = 0; i < 500 && source.read(start, 5000) === undefined; i += 1) await sleep(10);
    expect(errors).toEqual([0]);
    expect(source.fileError(0)).toBeInstanceOf(ObjectChangedError);
    expect(Buffer.from(source.read(start, 5000)!).equals(objects['single.bin']!)).toBe(true);
    expect(source.checksum(0)).toBeUndefined();
    expect(source.checksum(1)).toBe(checksumOf(objects['single.bin']!));
    source.close();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}dl/sub/c-big.bin`, Body: objects['dl/sub/c-big.bin'] }));
  });
});
