import { GetObjectCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Hono, type Context } from 'hono';
import {
  objectDownloadUrlsRequestSchema,
  objectListQuerySchema,
  type Action,
  type BucketList,
  type ObjectDownloadUrls,
  type ObjectList,
  type ObjectListQuery,
} from '../../contracts';
import { servesBucket } from '../../core/config';
import { ServiceError } from '../../core/errors';
import { principalCovers, type Principal } from '../../core/state/principal';
import type { AppDeps } from '../deps';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { limitBody, readJson } from '../middleware/body';
import { partUrlTtlSeconds } from '../multipart';
import { assertQueryKeys, servedBucket } from '../request';

/** HeadObjects in flight while download URLs are prepared. */
const headConcurrency = 16;
/** 100 keys of up to 1,024 bytes each, JSON-quoted. */
const downloadUrlsBodyBytes = 128 * 1024;
const cursorPrefix = 'c1.';

interface S3ErrorShape {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/** S3 failures in words: a missing bucket is the caller's 404; anything else is the storage's 503. */
function storageError(error: unknown, bucket: string): ServiceError {
  const { name, $metadata } = (error ?? {}) as S3ErrorShape;
  if (name === 'NoSuchBucket') return new ServiceError('NoSuchBucket', `bucket ${bucket} does not exist`);
  return new ServiceError('StorageUnavailable', `the storage service could not list bucket ${bucket} (${name ?? 'Error'}${$metadata?.httpStatusCode ? ` ${$metadata.httpStatusCode}` : ''}); try again`, {
    'retry-after': '5',
  });
}

/** The marker of ListObjects (v1), wrapped so clients treat it as opaque. */
const encodeCursor = (marker: string) => cursorPrefix + Buffer.from(marker, 'utf8').toString('base64url');

function decodeCursor(cursor: string): string {
  const body = cursor.startsWith(cursorPrefix) ? cursor.slice(cursorPrefix.length) : '';
  const marker = /^[A-Za-z0-9_-]+$/.test(body) ? Buffer.from(body, 'base64url').toString('utf8') : '';
  if (marker === '') throw new ServiceError('InvalidQuery', 'cursor is not one this service returned');
  return marker;
}

const allActions: readonly Action[] = ['read', 'write', 'admin'];

function actionsOn(principal: Principal, bucket: string): Action[] {
  return allActions.filter((action) => principalCovers(principal, bucket, action));
}

/** Buckets this deployment serves that the key may use: named ones, or (serving `*`) what S3 lists. */
async function visibleBuckets(deps: AppDeps, principal: Principal): Promise<string[]> {
  let names: readonly string[];
  if (principal.buckets !== '*') names = principal.buckets.filter((b) => servesBucket(deps.config, b));
  else if (deps.config.buckets !== '*') names = deps.config.buckets;
  else {
    // Only the local stack serves `*` (in AWS the list comes from cdk.json), so only it lists buckets.
    const listed = await deps.s3.send(new ListBucketsCommand({})).catch((error: unknown) => {
      throw storageError(error, '*');
    });
    names = (listed.Buckets ?? []).flatMap((b) => (b.Name ? [b.Name] : []));
  }
  return [...new Set(names)].sort();
}

async function listObjects(deps: AppDeps, bucket: string, query: ObjectListQuery): Promise<ObjectList> {
  const marker = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
  // ListObjects (v1) with Marker, not v2: s3rver builds v2 continuation tokens with DES, which OpenSSL 3
  // refuses (core/download-paths.ts). v1 paging works on AWS, RGW and s3rver alike.
  const page = await deps.s3
    .send(
      new ListObjectsCommand({
        Bucket: bucket,
        Prefix: query.prefix,
        MaxKeys: query.limit,
        ...(query.delimiter ? { Delimiter: query.delimiter } : {}),
        ...(marker !== undefined ? { Marker: marker } : {}),
      }),
    )
    .catch((error: unknown) => {
      throw storageError(error, bucket);
    });
  const contents = page.Contents ?? [];
  const prefixes = (page.CommonPrefixes ?? []).flatMap((p) => (p.Prefix ? [p.Prefix] : []));
  // S3 gives NextMarker only with a delimiter; otherwise the last key is the marker. A page ends on
  // whichever of the last key and the last prefix sorts later.
  const lastSeen = [contents[contents.length - 1]?.Key, prefixes[prefixes.length - 1]].filter((k): k is string => k !== undefined).sort().pop();
  const next = page.IsTruncated ? (page.NextMarker ?? lastSeen) : undefined;
  return {
    bucket,
    prefix: query.prefix,
    // The "folder" object a console may have made for this very prefix is the folder, not a file in it.
    objects: contents
      .filter((o) => o.Key !== undefined && o.Key !== query.prefix)
      .map((o) => ({
        key: o.Key!,
        sizeBytes: o.Size ?? 0,
        lastModified: o.LastModified ? o.LastModified.toISOString() : null,
        etag: o.ETag ?? null,
      })),
    prefixes,
    nextCursor: next !== undefined ? encodeCursor(next) : null,
  };
}

/** `filename*` (RFC 6266) carries any name; the plain `filename` is an ASCII stand-in for old clients. */
function attachmentDisposition(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

async function downloadUrls(deps: AppDeps, bucket: string, keys: readonly string[], attachment: boolean): Promise<ObjectDownloadUrls> {
  const unique = [...new Set(keys)];
  const files: ObjectDownloadUrls['files'] = [];
  for (let i = 0; i < unique.length; i += headConcurrency) {
    const batch = await Promise.all(
      unique.slice(i, i + headConcurrency).map(async (key) => {
        const head = await deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((error: unknown) => {
          const { name, $metadata } = (error ?? {}) as S3ErrorShape;
          if ($metadata?.httpStatusCode === 404 || name === 'NotFound' || name === 'NoSuchKey') {
            throw new ServiceError('NoSuchKey', `there is no object ${key.slice(0, 200)} in bucket ${bucket}`);
          }
          throw storageError(error, bucket);
        });
        const url = await getSignedUrl(
          deps.presignS3,
          new GetObjectCommand({ Bucket: bucket, Key: key, ...(attachment ? { ResponseContentDisposition: attachmentDisposition(key) } : {}) }),
          { expiresIn: partUrlTtlSeconds },
        );
        return {
          key,
          url,
          sizeBytes: head.ContentLength ?? 0,
          etag: head.ETag ?? null,
          lastModified: head.LastModified ? head.LastModified.toISOString() : null,
        };
      }),
    );
    files.push(...batch);
  }
  return { files, expiresAt: new Date(deps.now().getTime() + partUrlTtlSeconds * 1000).toISOString() };
}

function parseQuery(c: Context<AppEnv>): ObjectListQuery {
  const repeated = Object.entries(c.req.queries()).find(([, values]) => values.length > 1);
  if (repeated) throw new ServiceError('InvalidQuery', `name ${repeated[0].slice(0, 40)} once`);
  const parsed = objectListQuerySchema.safeParse(c.req.query());
  if (!parsed.success) {
    throw new ServiceError('InvalidQuery', parsed.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/**
 * Browsing a bucket (the console): the buckets a key may use, one folder level of objects at a time
 * (prefixes as folders) or every key below a prefix, and presigned GETs for Standard downloads.
 * Middleware is per route: a `/v1/buckets/*` one would also run for the preferences routes.
 */
export const objectRoutes = new Hono<AppEnv>()
  .get('/v1/buckets', authenticate(['bearer', 'basic']), async (c) => {
    assertQueryKeys(c, []);
    const principal = c.get('principal');
    const names = await visibleBuckets(c.get('deps'), principal);
    const body: BucketList = { buckets: names.map((name) => ({ name, actions: actionsOn(principal, name) })).filter((b) => b.actions.length > 0) };
    return c.json(body);
  })
  .get('/v1/buckets/:bucket/objects', authenticate(['bearer', 'basic']), async (c) => {
    const bucket = servedBucket(c, c.req.param('bucket'));
    requireScope(c.get('principal'), bucket, 'read');
    return c.json(await listObjects(c.get('deps'), bucket, parseQuery(c)));
  })
  .post('/v1/buckets/:bucket/download-urls', authenticate(['bearer', 'basic']), limitBody(downloadUrlsBodyBytes), async (c) => {
    assertQueryKeys(c, []);
    const bucket = servedBucket(c, c.req.param('bucket'));
    requireScope(c.get('principal'), bucket, 'read');
    const body = await readJson(c, objectDownloadUrlsRequestSchema);
    return c.json(await downloadUrls(c.get('deps'), bucket, body.keys, body.disposition === 'attachment'));
  });
