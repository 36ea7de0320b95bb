import { createHash } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, inject, it } from 'vitest';
import { createBucket, s3For } from '../support/s3';

/**
 * local/s3rver-server.ts: CompleteMultipartUpload as S3 does it (the local stack's S3, and the s3rver
 * target of the integration tests), against the real s3rver process of the test run.
 */
const MiB = 1024 * 1024;
const target = inject('s3rver');
const s3 = s3For(target);
const md5 = (bytes: Uint8Array) => createHash('md5').update(bytes).digest();

async function uploadParts(bucket: string, key: string, parts: Buffer[]): Promise<{ uploadId: string; etags: string[] }> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const etags: string[] = [];
  for (const [i, body] of parts.entries()) {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }));
    etags.push(ETag!);
  }
  return { uploadId: UploadId!, etags };
}

async function failure(promise: Promise<unknown>): Promise<{ name: string; status?: number }> {
  const error = (await promise.then(() => undefined, (e: unknown) => e)) as { name: string; $metadata?: { httpStatusCode?: number } } | undefined;
  expect(error, 'the request should have failed').toBeDefined();
  return { name: error!.name, status: error!.$metadata?.httpStatusCode };
}

describe('s3rver CompleteMultipartUpload (local/s3rver-server.ts)', () => {
  it('assembles the parts in order and answers S3\'s multipart ETag (MD5 of the part MD5s, "-N")', async () => {
    const bucket = await createBucket(target);
    const parts = [Buffer.alloc(5 * MiB, 1), Buffer.alloc(5 * MiB, 2), Buffer.from('the last part may be small')];
    const { uploadId, etags } = await uploadParts(bucket, 'dir/object.bin', parts);
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'dir/object.bin',
        UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    const expected = `"${createHash('md5').update(Buffer.concat(parts.map(md5))).digest('hex')}-3"`;
    expect(done.ETag).toBe(expected);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'dir/object.bin' }));
    expect([head.ETag, head.ContentLength]).toEqual([expected, 10 * MiB + parts[2]!.length]);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/object.bin' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat(parts))).toBe(true);
    // The upload is gone once completed.
    expect((await failure(s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'dir/object.bin', UploadId: uploadId })))).name).toBe('NoSuchUpload');
  });

  it('refuses a part list out of order (InvalidPartOrder) or with a wrong ETag (InvalidPart), and writes nothing', async () => {
    const bucket = await createBucket(target);
    const parts = [Buffer.alloc(5 * MiB, 3), Buffer.from('tail')];
    const { uploadId, etags } = await uploadParts(bucket, 'k', parts);
    const complete = (list: { ETag: string; PartNumber: number }[]) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'k', UploadId: uploadId, MultipartUpload: { Parts: list } }));
    expect(await failure(complete([{ ETag: etags[1]!, PartNumber: 2 }, { ETag: etags[0]!, PartNumber: 1 }]))).toEqual({ name: 'InvalidPartOrder', status: 400 });
    expect(await failure(complete([{ ETag: etags[0]!, PartNumber: 1 }, { ETag: etags[0]!, PartNumber: 2 }]))).toEqual({ name: 'InvalidPart', status: 400 });
    expect(await failure(complete([{ ETag: etags[0]!, PartNumber: 1 }, { ETag: etags[1]!, PartNumber: 3 }]))).toEqual({ name: 'InvalidPart', status: 400 });
    expect((await failure(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' })))).status).toBe(404);
    // The upload is intact: the right list still completes it.
    await complete(etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat(parts))).toBe(true);
  });
});
