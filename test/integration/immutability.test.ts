import { CreateBucketCommand, DeleteBucketCommand, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { freePort } from '../../local/ports';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket, readObject, s3For, testBytes } from '../support/s3';

const MiB = 1024 * 1024;
const rgw = inject('rgw');

async function errorOf(res: Response) {
  return { status: res.status, ...((await res.json()) as { error: { code: string; message: string } }).error };
}

const setupBody = (bucket: string) => ({ transfer_requests: [{ transfer_request: { paths: [{ source: 'a.bin' }], slipstream: { bucket } } }] });

/** Every way into a bucket that moves bytes, as the API offers them. */
function entryPoints(api: TestApi, bucket: string): [string, () => Promise<Response>][] {
  return [
    ['faspConnectionInfo', () => api.call(`/${bucket}?faspConnectionInfo`)],
    ['upload_setup', () => api.call('/files/upload_setup', { method: 'POST', json: setupBody(bucket) })],
    ['download_setup', () => api.call('/files/download_setup', { method: 'POST', json: setupBody(bucket) })],
    ['fallback upload', () => api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'k.bin', sizeBytes: 10 } })],
    ['companion grant', () => api.call('/v1/fallback/companion', { method: 'POST', json: { bucket } })],
  ];
}

describe.skipIf(rgw === null)('immutability against Ceph RGW (a real S3 with Object Lock)', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await createTestApi(rgw!);
  });

  it('refuses every transfer entry point for an Object Lock bucket with 409 BucketImmutable', async () => {
    const locked = await createBucket(rgw!, { objectLock: true, prefix: 'locked' });
    for (const [name, call] of entryPoints(api, locked)) {
      const error = await errorOf(await call());
      expect({ name, status: error.status, code: error.code }).toEqual({ name, status: 409, code: 'BucketImmutable' });
      expect(error.message).toMatch(/standard upload .* is still possible/);
    }
  });

  it('refuses a grant minted before the policy was set', async () => {
    const bucket = await createBucket(rgw!, { prefix: 'later' });
    const grant = (await (await api.call('/v1/fallback/companion', { method: 'POST', json: { bucket, keyPrefix: 'u/' } })).json()) as { companionUrl: string };
    // RGW cannot turn Object Lock on for an existing bucket, so the bucket comes back under the same name with it.
    await s3For(rgw!).send(new DeleteBucketCommand({ Bucket: bucket }));
    await s3For(rgw!).send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const res = await api.call(`${new URL(grant.companionUrl).pathname}/s3/multipart`, {
      method: 'POST',
      key: null,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filename: 'x.bin' }),
    });
    expect(await errorOf(res)).toMatchObject({ status: 409, code: 'BucketImmutable' });
  });

  it('runs a whole fallback multipart upload on an ordinary RGW bucket, byte-exact', async () => {
    const bucket = await createBucket(rgw!, { prefix: 'plain' });
    const data = testBytes(10 * MiB + 5, 21);
    const upload = (await (await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'rgw/file.bin', sizeBytes: data.length, partSizeBytes: 5 * MiB } })).json()) as Record<string, any>;
    expect(upload.partCount).toBe(3);
    const { parts } = (await (await api.call(`/v1/fallback/uploads/${upload.transferId}/parts`, { method: 'POST', json: { partNumbers: [1, 2, 3] } })).json()) as Record<string, any>;
    for (const part of parts) {
      const start = (part.partNumber - 1) * 5 * MiB;
      expect((await fetch(part.url, { method: 'PUT', body: new Uint8Array(data.subarray(start, start + part.sizeBytes)) })).status).toBe(200);
    }
    const listed = (await (await api.call(`/v1/fallback/uploads/${upload.transferId}/parts`)).json()) as Record<string, any>;
    expect(listed.parts).toHaveLength(3);
    expect((await api.call(`/v1/fallback/uploads/${upload.transferId}/complete`, { method: 'POST' })).status).toBe(200);
    expect((await readObject(rgw!, bucket, 'rgw/file.bin')).equals(data)).toBe(true);
  });

  it('aborts a fallback upload on RGW', async () => {
    const bucket = await createBucket(rgw!, { prefix: 'abort' });
    const upload = (await (await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'gone.bin', sizeBytes: 10 } })).json()) as Record<string, any>;
    expect((await api.call(`/v1/fallback/uploads/${upload.transferId}`, { method: 'DELETE' })).status).toBe(200);
    expect((await api.call(`/v1/transfers/${upload.transferId}`).then((r) => r.json())) as Record<string, any>).toMatchObject({ status: 'CANCELED' });
  });

  it('refuses with 503 ImmutabilityUnknown when the server will not say (access denied)', async () => {
    const bucket = await createBucket(rgw!, { prefix: 'secret' });
    await s3For(rgw!).send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Deny', Principal: '*', Action: 's3:GetBucketObjectLockConfiguration', Resource: `arn:aws:s3:::${bucket}` }],
        }),
      }),
    );
    const res = await api.call(`/${bucket}?faspConnectionInfo`);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await errorOf(res)).toMatchObject({ status: 503, code: 'ImmutabilityUnknown' });
  });
});

describe('immutability where the server cannot say', () => {
  it('allows transfers on a server without Object Lock (s3rver answers 501 NotImplemented)', async () => {
    const api = await createTestApi(inject('s3rver'));
    const bucket = await createBucket(inject('s3rver'));
    expect(await api.deps.guard.lockState(bucket)).toBe('unsupported');
    expect((await api.call(`/${bucket}?faspConnectionInfo`)).status).toBe(200);
  });

  it('refuses with 503 when the storage cannot be reached at all', async () => {
    const closed = { ...inject('s3rver'), endpoint: `http://127.0.0.1:${await freePort()}` };
    const api = await createTestApi(closed);
    for (const [name, call] of entryPoints(api, 'some-bucket')) {
      const error = await errorOf(await call());
      expect({ name, status: error.status, code: error.code }).toEqual({ name, status: 503, code: 'StorageUnavailable' });
    }
  });
});
