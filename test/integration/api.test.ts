import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { basicAuth, createTestApi, type TestApi } from '../support/harness';
import { createBucket, readObject, testBytes } from '../support/s3';

const MiB = 1024 * 1024;
let api: TestApi;
let bucket: string;
const s3rver = () => inject('s3rver');

beforeAll(async () => {
  api = await createTestApi();
  bucket = await createBucket(s3rver());
});

async function json(res: Response) {
  return (await res.json()) as Record<string, any>;
}

describe('API keys', () => {
  it('refuses missing, wrong and revoked keys with 401 and out-of-scope ones with 403', async () => {
    expect((await api.call('/v1/transfers', { key: null })).status).toBe(401);
    expect((await api.call('/v1/transfers', { key: 'sk_0000000000000000_' + 'A'.repeat(43) })).status).toBe(401);
    const created = await json(await api.call('/v1/keys', { method: 'POST', json: { name: 'ci', buckets: [bucket], actions: ['read'] } }));
    expect(created.secret).toMatch(/^sk_/);
    expect((await api.call(`/v1/buckets/${bucket}/preferences`, { key: created.secret })).status).toBe(200);
    const put = await api.call(`/v1/buckets/${bucket}/preferences`, { method: 'PATCH', key: created.secret, json: { ratePolicy: 'low' } });
    expect(put.status).toBe(403);
    expect((await json(put)).error.code).toBe('Forbidden');
    expect((await api.call('/v1/keys', { key: created.secret })).status).toBe(403);
    expect((await api.call(`/v1/buckets/other-bucket/preferences`, { key: created.secret })).status).toBe(403);

    const listed = await json(await api.call('/v1/keys'));
    expect(listed.keys.map((k: { id: string }) => k.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret.split('_').slice(2).join('_'));
    expect((await api.call(`/v1/keys/${created.id}`, { method: 'DELETE' })).status).toBe(200);
    const revoked = await api.call(`/v1/buckets/${bucket}/preferences`, { key: created.secret });
    expect(revoked.status).toBe(401);
    expect((await json(revoked)).error.code).toBe('Unauthorized');
  });

  it('stores only a hash of the secret', async () => {
    const created = await json(await api.call('/v1/keys', { method: 'POST', json: { name: 'h', buckets: ['*'], actions: ['read'] } }));
    const secretPart = created.secret.split('_').slice(2).join('_');
    const stored = await api.deps.keys.getApiKey(created.id);
    expect(JSON.stringify(stored)).not.toContain(secretPart);
  });
});

describe('faspConnectionInfo', () => {
  it('returns IBM COS XML with a working bucket-scoped access key', async () => {
    const res = await api.call(`/${bucket}?faspConnectionInfo`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/xml');
    const xml = await res.text();
    expect(xml).toMatch(/^<\?xml[^>]*>\s*<FASPConnectionInfo><AccessKey><Id>ak_[0-9a-f]{16}<\/Id><Secret>[^<]+<\/Secret><\/AccessKey><ATSEndpoint>http:\/\/api\.test<\/ATSEndpoint><\/FASPConnectionInfo>$/);
    const id = /<Id>([^<]+)<\/Id>/.exec(xml)![1]!;
    const secret = /<Secret>([^<]+)<\/Secret>/.exec(xml)![1]!;
    const prefs = await api.call(`/v1/buckets/${bucket}/preferences`, { headers: { authorization: basicAuth(id, secret) } });
    expect(prefs.status).toBe(200);
    const other = await api.call(`/v1/buckets/another-one/preferences`, { headers: { authorization: basicAuth(id, secret) } });
    expect(other.status).toBe(403);
    expect((await api.call(`/v1/buckets/${bucket}/preferences`, { headers: { authorization: basicAuth(id, 'wrong') } })).status).toBe(401);
  });

  it('adds engine endpoints, fallback URL and protocol version as JSON', async () => {
    const info = await json(await api.call(`/${bucket}?faspConnectionInfo`, { headers: { accept: 'application/json' } }));
    expect(info).toMatchObject({ bucket, atsEndpoint: 'http://api.test', engine: { host: '127.0.0.1', port: 33001 }, fallbackUrl: 'http://api.test/v1/fallback', protocolVersion: 1 });
    expect(Date.parse(info.accessKey.expiresAt)).toBeGreaterThan(Date.now());
  });

  it('answers 404 for a bucket that does not exist', async () => {
    const res = await api.call('/no-such-bucket-here?faspConnectionInfo');
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('NoSuchBucket');
  });
});

describe('transfer setup (Aspera Node API)', () => {
  const request = (paths: object[], extra: object = {}) => ({
    transfer_requests: [{ transfer_request: { paths, destination_root: '/incoming', slipstream: { bucket }, ...extra } }],
  });

  it('upload_setup returns a spec with Aspera fields, a sealed token and the session secret', async () => {
    const res = await api.call('/files/upload_setup', { method: 'POST', json: request([{ source: '/home/u/a.bin', size: 100 }, { source: 'b.txt', destination: 'docs/b.txt', size: 5 }]) });
    expect(res.status).toBe(200);
    const spec = (await json(res)).transfer_specs[0].transfer_spec;
    expect(spec).toMatchObject({
      direction: 'send', remote_host: '127.0.0.1', fasp_port: 33001, destination_root: '/incoming',
      rate_policy: 'fair', http_fallback: 'true', cipher: 'aes-256-gcm',
      slipstream: { bucket, key_prefix: 'incoming/', protocol_version: 1 },
    });
    expect(spec.token).toMatch(/^sst1\.transfer\.k1\./);
    const transfer = await json(await api.call(`/v1/transfers/${spec.slipstream.transfer_id}`));
    expect(transfer).toMatchObject({ status: 'QUEUED', direction: 'upload', files: 2, bytesTotal: 105, bucket });
  });

  it('takes defaults and caps from the bucket preferences', async () => {
    const b = await createBucket(s3rver());
    await api.call(`/v1/buckets/${b}/preferences`, { method: 'PATCH', json: { upload: { targetRateKbps: 20_000, minRateKbps: 1000 }, ratePolicy: 'fair', httpFallback: 'false' } });
    const body = { transfer_requests: [{ transfer_request: { paths: [{ source: 'x' }], target_rate_kbps: 90_000, rate_policy: 'fixed', slipstream: { bucket: b } } }] };
    const spec = (await json(await api.call('/files/upload_setup', { method: 'POST', json: body }))).transfer_specs[0].transfer_spec;
    expect(spec).toMatchObject({ target_rate_kbps: 20_000, target_rate_cap_kbps: 20_000, min_rate_kbps: 1000, rate_policy: 'fair', rate_policy_allowed: 'fair', http_fallback: 'false' });
    const refused = await api.call('/files/upload_setup', {
      method: 'POST',
      json: { transfer_requests: [{ transfer_request: { paths: [{ source: 'x' }], http_fallback: 'force', slipstream: { bucket: b } } }] },
    });
    expect(refused.status).toBe(400);
    const refusedBody = await json(refused);
    expect(refusedBody.error.code).toBe('HttpFallbackDisabled');
    expect(refusedBody.transfer_specs[0].error).toMatchObject({ code: 400, reason: 'HttpFallbackDisabled' });
  });

  it('accepts the access key from faspConnectionInfo (Basic), which implies the bucket', async () => {
    const info = await json(await api.call(`/${bucket}?faspConnectionInfo`, { headers: { accept: 'application/json' } }));
    const res = await api.call('/files/download_setup', {
      method: 'POST',
      key: null,
      headers: { authorization: basicAuth(info.accessKey.id, info.accessKey.secret) },
      json: { transfer_requests: [{ transfer_request: { paths: [{ source: 'reports/q1.csv', destination: './q1.csv' }], source_root: '/' } }] },
    });
    expect(res.status).toBe(200);
    expect((await json(res)).transfer_specs[0].transfer_spec).toMatchObject({ direction: 'receive', slipstream: { bucket, key_prefix: '' } });
  });

  it('reports per-entry errors and still returns the good entries', async () => {
    const body = {
      transfer_requests: [
        { transfer_request: { paths: [{ source: 'ok.txt' }], slipstream: { bucket } } },
        { transfer_request: { paths: [{ source: 'x', destination: '../escape' }], slipstream: { bucket } } },
      ],
    };
    const res = await api.call('/files/upload_setup', { method: 'POST', json: body });
    expect(res.status).toBe(200);
    const specs = (await json(res)).transfer_specs;
    expect(specs[0]).toHaveProperty('transfer_spec');
    expect(specs[1].error).toMatchObject({ code: 400, reason: 'InvalidObjectKey' });
  });
});

describe('bucket preferences', () => {
  it('sets and gets, as JSON and as S3-style XML, and validates across fields', async () => {
    const b = await createBucket(s3rver());
    const initial = await json(await api.call(`/v1/buckets/${b}/preferences`));
    expect(initial.updatedAt).toBeNull();
    const prefs = {
      upload: { defaultTransport: 'standard', targetRateKbps: 100_000, minRateKbps: 10_000 },
      download: { defaultTransport: 'high-speed', targetRateKbps: 500_000, minRateKbps: 0 },
      ratePolicy: 'high',
      httpFallback: 'force',
    };
    const put = await api.call(`/v1/buckets/${b}/preferences`, { method: 'PUT', json: prefs });
    expect(put.status).toBe(200);
    expect((await json(await api.call(`/v1/buckets/${b}/preferences`))).preferences).toEqual(prefs);
    const xml = await api.call(`/${b}?transferPreferences`, {
      method: 'PUT',
      headers: { 'content-type': 'application/xml' },
      body: '<TransferPreferences><Download><TargetRateKbps>250000</TargetRateKbps></Download><RatePolicy>low</RatePolicy></TransferPreferences>',
    });
    expect(xml.status).toBe(200);
    expect(await xml.text()).toContain('<TargetRateKbps>250000</TargetRateKbps>');
    const after = (await json(await api.call(`/v1/buckets/${b}/preferences`))).preferences;
    expect(after).toMatchObject({ ratePolicy: 'low', download: { targetRateKbps: 250_000 }, upload: prefs.upload });
    const bad = await api.call(`/v1/buckets/${b}/preferences`, { method: 'PATCH', json: { upload: { minRateKbps: 200_000 } } });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.code).toBe('ValidationError');
  });
});

describe('HTTP-fallback multipart', () => {
  it('uploads through presigned URLs straight to S3 and completes byte-exact', async () => {
    const data = testBytes(12 * MiB + 12345, 7);
    const created = await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'fallback/big.bin', sizeBytes: data.length, partSizeBytes: 5 * MiB, contentType: 'application/octet-stream' } });
    expect(created.status).toBe(201);
    const upload = await json(created);
    expect(upload).toMatchObject({ partCount: 3, partSizeBytes: 5 * MiB });
    const signed = await json(await api.call(`/v1/fallback/uploads/${upload.transferId}/parts`, { method: 'POST', json: { partNumbers: [1, 2, 3] } }));
    expect(signed.parts).toHaveLength(3);
    for (const part of signed.parts) {
      expect(new URL(part.url).origin).toBe(new URL(s3rver().endpoint).origin);
      const start = (part.partNumber - 1) * 5 * MiB;
      const put = await fetch(part.url, { method: 'PUT', body: new Uint8Array(data.subarray(start, start + part.sizeBytes)) });
      expect(put.status).toBe(200);
    }
    const listed = await json(await api.call(`/v1/fallback/uploads/${upload.transferId}/parts`));
    expect(listed.parts.map((p: { sizeBytes: number }) => p.sizeBytes)).toEqual([5 * MiB, 5 * MiB, 2 * MiB + 12345]);
    const done = await api.call(`/v1/fallback/uploads/${upload.transferId}/complete`, { method: 'POST' });
    expect(done.status).toBe(200);
    const stored = await readObject(s3rver(), bucket, 'fallback/big.bin');
    expect(createHash('sha256').update(stored).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    const transfer = await json(await api.call(`/v1/transfers/${upload.transferId}`));
    expect(transfer).toMatchObject({ status: 'COMPLETED', transport: 'http', bytesTransferred: data.length });
    const completed = await json(await api.call(`/v1/transfers?state=completed&bucket=${bucket}`));
    expect(completed.transfers.map((t: { id: string }) => t.id)).toContain(upload.transferId);
  });

  it('refuses to complete with a missing or short part, and aborts on request', async () => {
    const upload = await json(await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'fallback/short.bin', sizeBytes: 11 * MiB, partSizeBytes: 5 * MiB } }));
    const [p1] = (await json(await api.call(`/v1/fallback/uploads/${upload.transferId}/parts`, { method: 'POST', json: { partNumbers: [1, 3] } }))).parts;
    await fetch(p1.url, { method: 'PUT', body: new Uint8Array(testBytes(5 * MiB)) });
    const missing = await api.call(`/v1/fallback/uploads/${upload.transferId}/complete`, { method: 'POST' });
    expect(missing.status).toBe(400);
    expect((await json(missing)).error.code).toBe('MissingParts');
    const beyond = await api.call(`/v1/fallback/uploads/${upload.transferId}/parts`, { method: 'POST', json: { partNumbers: [4] } });
    expect(beyond.status).toBe(400);
    expect((await api.call(`/v1/fallback/uploads/${upload.transferId}`, { method: 'DELETE' })).status).toBe(200);
    expect((await json(await api.call(`/v1/transfers/${upload.transferId}`))).status).toBe('CANCELED');
    const after = await api.call(`/v1/fallback/uploads/${upload.transferId}/complete`, { method: 'POST' });
    expect(after.status).toBe(409);
  });

  it('enforces S3 part rules with clear errors', async () => {
    const small = await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'x', sizeBytes: 20 * MiB, partSizeBytes: MiB } });
    expect(small.status).toBe(400);
    expect((await json(small)).error).toMatchObject({ code: 'InvalidPartSize' });
    const many = await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'x', sizeBytes: 60_000 * MiB, partSizeBytes: 5 * MiB } });
    expect(many.status).toBe(400);
    expect((await json(many)).error.message).toMatch(/10000/);
  });
});

describe('Companion-compatible routes (@uppy/aws-s3)', () => {
  it('runs create → sign → list → complete with the grant in the URL and no headers', async () => {
    const grant = await json(await api.call('/v1/fallback/companion', { method: 'POST', json: { bucket, keyPrefix: 'uppy/' } }));
    const base = new URL(grant.companionUrl).pathname;
    const call = (path: string, init: RequestInit = {}) => api.call(base + path, { ...init, key: null });
    const created = await json(await call('/s3/multipart', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ filename: 'photo.jpg', type: 'image/jpeg', metadata: {} }) }));
    expect(created.key).toBe('uppy/photo.jpg');
    const q = `?key=${encodeURIComponent(created.key)}`;
    const data = testBytes(5 * MiB + 10, 3);
    for (const [n, bytes] of [[1, data.subarray(0, 5 * MiB)], [2, data.subarray(5 * MiB)]] as const) {
      const { url } = await json(await call(`/s3/multipart/${created.uploadId}/${n}${q}`));
      expect((await fetch(url, { method: 'PUT', body: new Uint8Array(bytes) })).status).toBe(200);
    }
    const parts = (await json(await call(`/s3/multipart/${created.uploadId}${q}`))) as unknown as { PartNumber: number; ETag: string }[];
    expect(parts.map((p) => p.PartNumber)).toEqual([1, 2]);
    const done = await call(`/s3/multipart/${created.uploadId}/complete${q}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ parts: parts.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })) }),
    });
    expect(done.status).toBe(200);
    expect(await json(done)).toMatchObject({ key: 'uppy/photo.jpg' });
    expect((await readObject(s3rver(), bucket, 'uppy/photo.jpg')).equals(data)).toBe(true);
    expect((await call(`/s3/multipart/${created.uploadId}?key=other`)).status).toBe(404);
    const forged = await api.call(base.slice(0, -3) + 'AAA/s3/multipart', { key: null, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(forged.status).toBe(401);
  });
});

describe('transfers', () => {
  it('lists active ones, gets one and cancels it; a scoped key sees only its buckets', async () => {
    const setup = await json(await api.call('/files/upload_setup', { method: 'POST', json: { transfer_requests: [{ transfer_request: { paths: [{ source: 'c' }], slipstream: { bucket } } }] } }));
    const id = setup.transfer_specs[0].transfer_spec.slipstream.transfer_id;
    const active = await json(await api.call('/v1/transfers?state=active'));
    expect(active.transfers.map((t: { id: string }) => t.id)).toContain(id);
    const outsider = await api.keyWith(['some-other-bucket'], ['read']);
    const seen = await json(await api.call('/v1/transfers', { key: outsider }));
    expect(seen.transfers).toEqual([]);
    expect((await api.call(`/v1/transfers/${id}`, { key: outsider })).status).toBe(404);
    const canceled = await api.call(`/v1/transfers/${id}/cancel`, { method: 'POST' });
    expect(canceled.status).toBe(200);
    expect((await json(canceled)).status).toBe('CANCELED');
    expect((await api.call(`/v1/transfers/${id}/cancel`, { method: 'POST' })).status).toBe(409);
  });

  it('pages with a cursor', async () => {
    for (let i = 0; i < 3; i += 1) {
      await api.call('/files/upload_setup', { method: 'POST', json: { transfer_requests: [{ transfer_request: { paths: [{ source: `p${i}` }], slipstream: { bucket } } }] } });
    }
    const first = await json(await api.call('/v1/transfers?limit=2'));
    expect(first.transfers).toHaveLength(2);
    const second = await json(await api.call(`/v1/transfers?limit=2&cursor=${first.nextCursor}`));
    expect(second.transfers[0].id).not.toBe(first.transfers[0].id);
  });
});
