import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../core/clients';
import { seededBytes } from './bytes';
import type { S3Target } from './global-setup';

export function s3For(target: S3Target): S3Client {
  return createS3Client({
    region: 'us-east-1',
    s3Endpoint: target.endpoint,
    s3ForcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
  });
}

export async function createBucket(target: S3Target, options: { objectLock?: boolean; prefix?: string } = {}): Promise<string> {
  const bucket = `${options.prefix ?? 'b'}-${randomBytes(5).toString('hex')}`;
  await s3For(target).send(new CreateBucketCommand({ Bucket: bucket, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  return bucket;
}

export async function readObject(target: S3Target, bucket: string, key: string): Promise<Buffer> {
  const result = await s3For(target).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await result.Body!.transformToByteArray());
}

/** Deterministic bytes so a mismatch is reproducible. */
export function testBytes(size: number, seed = 1): Buffer {
  const bytes = seededBytes(size, seed);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
