import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutBucketCorsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rgwAvailable, startRgw, type RgwServer } from '../support/rgw';

/**
 * test/support/rgw.ts against the S3 features s3rver lacks or gets wrong: a throwaway Ceph cluster with
 * radosgw, driven with AWS SDK v3. Skips without Ceph, except in CI (CI=true), where Ceph is required.
 */
const MiB = 1024 * 1024;
const ci = process.env.CI === 'true';
const available = rgwAvailable();

/** The pids of processes whose command line mentions `text` (our ceph.conf lives under it). */
function processesMentioning(text: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', text], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (error) {
    if ((error as { status?: number }).status === 1) return []; // pgrep: nothing matched
    throw error;
  }
}

describe.skipIf(!available && !ci)('Ceph RGW test harness (test/support/rgw.ts)', () => {
  // The parent of the harness's temp dir, so that we can look for its processes and files afterwards.
  let parent = '';
  let server: RgwServer | undefined;
  let s3: S3Client;
  let startMs = 0;

  beforeAll(async () => {
    if (!available) {
      throw new Error('Ceph RGW is required in CI but radosgw/ceph-mon/ceph-osd/ceph/radosgw-admin are not all on PATH (apt-get install ceph-mon ceph-osd radosgw ceph-common)');
    }
    parent = mkdtempSync(join(tmpdir(), 'slipstream-rgwtest-'));
    const t0 = performance.now();
    server = await startRgw({ dataDir: parent });
    startMs = performance.now() - t0;
    console.log(`RGW started in ${Math.round(startMs)} ms at ${server.endpoint}`);
    s3 = new S3Client({
      endpoint: server.endpoint,
      region: server.region,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }, 90_000);

  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  const bucketName = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;

  it('starts with an S3 user', () => {
    expect(server!.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server!.region).toBe('us-east-1');
    expect(server!.accessKeyId).toMatch(/^[A-Z0-9]{20}$/);
    expect(server!.secretAccessKey).toMatch(/^[0-9a-f]{40}$/);
    expect(startMs).toBeLessThan(60_000);
  });

  it('has Object Lock: 404 ObjectLockConfigurationNotFoundError without it, Enabled with it', async () => {
    const plain = bucketName('plain');
    const locked = bucketName('locked');
    await s3.send(new CreateBucketCommand({ Bucket: plain }));
    await s3.send(new CreateBucketCommand({ Bucket: locked, ObjectLockEnabledForBucket: true }));

    const error = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: plain })).then(
      () => undefined,
      (e: unknown) => e as { name: string; $metadata?: { httpStatusCode?: number } },
    );
    expect(error?.name).toBe('ObjectLockConfigurationNotFoundError');
    expect(error?.$metadata?.httpStatusCode).toBe(404);

    const config = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: locked }));
    expect(config.ObjectLockConfiguration?.ObjectLockEnabled).toBe('Enabled');
  });

  it('takes a multipart upload through presigned UploadPart URLs', async () => {
    const Bucket = bucketName('mpu');
    const Key = 'dir/big object.bin';
    await s3.send(new CreateBucketCommand({ Bucket }));
    const parts = [randomBytes(5 * MiB), randomBytes(1024)];
    const body = Buffer.concat(parts);

    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    expect(UploadId).toBeTruthy();
    const etags: string[] = [];
    for (const [index, part] of parts.entries()) {
      const url = await getSignedUrl(s3, new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: index + 1 }), { expiresIn: 600 });
      const response = await fetch(url, { method: 'PUT', body: part });
      expect(response.status, await response.clone().text()).toBe(200);
      const etag = response.headers.get('etag');
      expect(etag).toBeTruthy();
      etags.push(etag!);
    }

    const listed = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, 5 * MiB, etags[0]],
      [2, 1024, etags[1]],
    ]);

    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
    // RGW's CompleteMultipartUpload answers an empty ETag (see the notes); HeadObject has the real one.
    console.log(`CompleteMultipartUpload ETag ${JSON.stringify(completed.ETag)}, HeadObject ETag ${JSON.stringify(head.ETag)}`);
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
    expect(head.ContentLength).toBe(body.length);

    const got = await s3.send(new GetObjectCommand({ Bucket, Key }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(bytes.length).toBe(body.length);
    expect(bytes.equals(body)).toBe(true);
  });

  it('answers a CORS preflight from the bucket CORS configuration', async () => {
    const Bucket = bucketName('cors');
    const origin = 'https://app.example.test';
    await s3.send(new CreateBucketCommand({ Bucket }));
    await s3.send(
      new PutBucketCorsCommand({
        Bucket,
        CORSConfiguration: {
          CORSRules: [{ AllowedOrigins: [origin], AllowedMethods: ['GET', 'PUT'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag'], MaxAgeSeconds: 600 }],
        },
      }),
    );

    const preflight = await fetch(`${server!.endpoint}/${Bucket}/some/key.bin`, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type' },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('PUT');

    const denied = await fetch(`${server!.endpoint}/${Bucket}/some/key.bin`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://elsewhere.example.test', 'Access-Control-Request-Method': 'PUT' },
    });
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('stops without leaving a process or a file behind', async () => {
    expect(processesMentioning(parent).length).toBeGreaterThanOrEqual(3); // mon, osd, radosgw
    const t0 = performance.now();
    await server!.stop();
    console.log(`RGW stopped in ${Math.round(performance.now() - t0)} ms`);
    // SIGKILLed processes can take a moment to be gone from /proc.
    const deadline = Date.now() + 5000;
    while (processesMentioning(parent).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(processesMentioning(parent)).toEqual([]);
    expect(readdirSync(parent)).toEqual([]);
    await server!.stop(); // idempotent
  });
});
