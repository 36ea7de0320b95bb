import { PutObjectCommand } from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket, s3For, testBytes } from '../support/s3';

/**
 * The console's bucket browser routes (functions/routes/objects.ts) against real s3rver: the bucket list,
 * one folder level at a time with prefixes as folders, paging with opaque cursors (ListObjects v1 and
 * Marker underneath), and presigned GETs for Standard downloads.
 */
const target = inject('s3rver');
let api: TestApi;
let bucket: string;
const keys = ['a.txt', 'b.bin', 'photos/', 'photos/2026/x.jpg', 'photos/2026/y.jpg', 'photos/z.txt', 'zeta/q.txt'];
const body = (key: string) => (key.endsWith('/') ? Buffer.alloc(0) : testBytes(100 + key.length, key.length));

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

async function list(query: Record<string, string>, key?: string) {
  const res = await api.call(`/v1/buckets/${bucket}/objects?${new URLSearchParams(query)}`, key === undefined ? {} : { key });
  return { status: res.status, body: (await json(res)) as { objects: { key: string; sizeBytes: number; lastModified: string; etag: string }[]; prefixes: string[]; nextCursor: string | null; error?: { code: string } } };
}

beforeAll(async () => {
  api = await createTestApi(target);
  bucket = await createBucket(target, { prefix: 'objects' });
  const s3 = s3For(target);
  for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body(key) }));
});

describe('GET /v1/buckets', () => {
  it("lists the buckets a key may use, with what it may do in each", async () => {
    const all = (await json(await api.call('/v1/buckets'))) as { buckets: { name: string; actions: string[] }[] };
    expect(all.buckets).toContainEqual({ name: bucket, actions: ['read', 'write', 'admin'] });
    const reader = await api.keyWith([bucket], ['read']);
    expect(await json(await api.call('/v1/buckets', { key: reader }))).toEqual({ buckets: [{ name: bucket, actions: ['read'] }] });
  });
});

describe('GET /v1/buckets/{bucket}/objects', () => {
  it('lists one folder level: objects, and deeper keys as prefixes', async () => {
    const root = await list({ delimiter: '/' });
    expect(root.status).toBe(200);
    expect(root.body.objects.map((o) => o.key)).toEqual(['a.txt', 'b.bin']);
    expect(root.body.prefixes).toEqual(['photos/', 'zeta/']);
    expect(root.body.nextCursor).toBeNull();
    expect(root.body.objects[0]).toMatchObject({ sizeBytes: 105, etag: expect.stringMatching(/^"[0-9a-f]{32}"$/), lastModified: expect.stringMatching(/^\d{4}-/) });
    const photos = await list({ prefix: 'photos/', delimiter: '/' });
    // The folder's own zero-byte marker is the folder, not a file in it.
    expect(photos.body.objects.map((o) => o.key)).toEqual(['photos/z.txt']);
    expect(photos.body.prefixes).toEqual(['photos/2026/']);
  });

  it('lists every key below a prefix without a delimiter', async () => {
    const deep = await list({ prefix: 'photos/2026/' });
    expect(deep.body.objects.map((o) => o.key)).toEqual(['photos/2026/x.jpg', 'photos/2026/y.jpg']);
    expect(deep.body.prefixes).toEqual([]);
  });

  it('pages with cursors, each key and prefix once, in order', async () => {
    const queries: Record<string, string>[] = [{ limit: '2' }, { limit: '1', delimiter: '/' }, { limit: '3', delimiter: '/' }];
    for (const query of queries) {
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 20; page++) {
        const { body: listing } = await list({ ...query, ...(cursor ? { cursor } : {}) });
        seen.push(...listing.objects.map((o) => o.key), ...listing.prefixes);
        cursor = listing.nextCursor ?? undefined;
        if (!cursor) break;
        expect(cursor).toMatch(/^c1\./);
      }
      const expected = query.delimiter ? ['a.txt', 'b.bin', 'photos/', 'zeta/'] : keys.filter((k) => k !== 'photos/').concat('photos/');
      expect([...seen].sort(), JSON.stringify(query)).toEqual([...expected].sort());
      expect(new Set(seen).size).toBe(seen.length);
    }
  });

  it('needs read scope on the bucket', async () => {
    const writer = await api.keyWith([bucket], ['write']);
    expect((await list({}, writer)).status).toBe(403);
    const elsewhere = await api.keyWith(['some-other-bucket'], ['read', 'write', 'admin']);
    expect((await list({}, elsewhere)).status).toBe(403);
    const missing = await api.call('/v1/buckets/no-such-bucket-zz9/objects');
    expect([missing.status, ((await json(missing)) as { error: { code: string } }).error.code]).toEqual([404, 'NoSuchBucket']);
  });
});

describe('POST /v1/buckets/{bucket}/download-urls', () => {
  it('signs GETs that return the objects, with their sizes; ranges work', async () => {
    const res = await api.call(`/v1/buckets/${bucket}/download-urls`, { method: 'POST', json: { keys: ['a.txt', 'photos/2026/x.jpg'] } });
    expect(res.status).toBe(200);
    const { files } = (await json(res)) as { files: { key: string; url: string; sizeBytes: number; etag: string }[] };
    expect(files.map((f) => [f.key, f.sizeBytes])).toEqual([
      ['a.txt', 105],
      ['photos/2026/x.jpg', 117],
    ]);
    for (const file of files) {
      expect(Buffer.from(await (await fetch(file.url)).arrayBuffer()).equals(body(file.key))).toBe(true);
    }
    const range = await fetch(files[0]!.url, { headers: { range: 'bytes=100-' } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(body('a.txt').subarray(100))).toBe(true);
  });

  it('makes a browser save the object under its name when asked to', async () => {
    const res = await api.call(`/v1/buckets/${bucket}/download-urls`, { method: 'POST', json: { keys: ['photos/z.txt'], disposition: 'attachment' } });
    const { files } = (await json(res)) as { files: { url: string }[] };
    const got = await fetch(files[0]!.url);
    expect(got.headers.get('content-disposition')).toBe(`attachment; filename="z.txt"; filename*=UTF-8''z.txt`);
  });

  it('answers 404 NoSuchKey for a missing object and 403 without read scope', async () => {
    const missing = await api.call(`/v1/buckets/${bucket}/download-urls`, { method: 'POST', json: { keys: ['nope.txt'] } });
    expect([missing.status, ((await json(missing)) as { error: { code: string } }).error.code]).toEqual([404, 'NoSuchKey']);
    const writer = await api.keyWith([bucket], ['write']);
    expect((await api.call(`/v1/buckets/${bucket}/download-urls`, { method: 'POST', key: writer, json: { keys: ['a.txt'] } })).status).toBe(403);
  });
});
