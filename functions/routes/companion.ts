import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { maxObjectSizeBytes, maxPartCount, objectKeyProblem } from '../../contracts';
import { ServiceError } from '../../core/errors';
import type { Principal } from '../../core/state/principal';
import { companionGrantSchema, openToken, type CompanionGrant } from '../../core/token';
import type { AppEnv } from '../env';
import { limitBody, parseJsonText } from '../middleware/body';
import {
  abortMultipartTransfer,
  completeMultipartTransfer,
  createMultipartTransfer,
  listUploadedParts,
  partUrlTtlSeconds,
  signPartUrls,
} from '../multipart';
import { nowSeconds } from '../request';

/**
 * The routes `@uppy/aws-s3` calls on a Companion server (`companionEndpoint`). Uppy sends no headers,
 * so the grant rides in the URL: `/companion/{sealed grant}/s3/...`, minted by POST /v1/fallback/companion.
 */

const grantMiddleware: MiddlewareHandler<AppEnv> = async (c, next) => {
  const deps = c.get('deps');
  const grant = openToken(await deps.keyring(), 'companion', c.req.param('token') ?? '', companionGrantSchema, nowSeconds(deps));
  const key = await deps.keys.getApiKey(grant.apiKeyId);
  if (!key || key.revokedAt || (key.expiresAt && new Date(key.expiresAt) <= deps.now())) {
    throw new ServiceError('Unauthorized', 'the key that issued this upload URL has been revoked or has expired');
  }
  const principal: Principal = { kind: 'access-key', keyId: `companion:${grant.apiKeyId}`, apiKeyId: grant.apiKeyId, buckets: [grant.bucket], actions: ['write'] };
  c.set('grant', grant);
  c.set('principal', principal);
  await next();
};

/** Keys are the grant's prefix plus the file name Uppy sends. */
function keyFor(grant: CompanionGrant, filename: string): string {
  const key = grant.keyPrefix + filename;
  const problem = objectKeyProblem(key);
  if (problem) throw new ServiceError('InvalidObjectKey', `"${filename.slice(0, 200)}" cannot be stored: the object key ${problem}`);
  return key;
}

/** The transfer behind an upload id, checked against the grant and Uppy's `?key=`. */
async function grantedUpload(c: Context<AppEnv>) {
  const deps = c.get('deps');
  const grant = c.get('grant');
  const uploadId = c.req.param('uploadId') ?? '';
  const key = c.req.query('key');
  if (!key) throw new ServiceError('InvalidQuery', 'add ?key=<object key> as returned when the upload was created');
  const transferId = uploadId.length <= 1024 ? await deps.transfers.transferIdForUpload(uploadId) : undefined;
  const transfer = transferId ? await deps.transfers.get(transferId) : undefined;
  if (!transfer || transfer.bucket !== grant.bucket || transfer.key !== key || !key.startsWith(grant.keyPrefix)) {
    throw new ServiceError('NoSuchUpload', 'no such multipart upload under this upload URL');
  }
  return transfer;
}

const createSchema = z.object({
  filename: z.string().min(1).max(1024),
  type: z.string().max(256).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

const completeSchema = z.object({
  parts: z.array(z.object({ PartNumber: z.number().int().min(1).max(maxPartCount), ETag: z.string().min(1).max(1024) })).min(1).max(maxPartCount),
});

function partNumberParam(value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > maxPartCount) throw new ServiceError('ValidationError', `part number must be 1..${maxPartCount}`);
  return n;
}

async function jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  // Uppy sends JSON; some fetch wrappers label it text/plain.
  if (type !== 'application/json' && type !== 'text/plain') {
    throw new ServiceError('UnsupportedMediaType', `send the body as application/json (got ${type || 'no content type'})`);
  }
  return parseJsonText(await c.req.text(), schema);
}

export const companionRoutes = new Hono<AppEnv>()
  .use('/companion/:token/*', limitBody(2 * 1024 * 1024), grantMiddleware)
  .get('/companion/:token/s3/params', async (c) => {
    const deps = c.get('deps');
    const grant = c.get('grant');
    const filename = c.req.query('filename');
    if (!filename) throw new ServiceError('InvalidQuery', 'add ?filename=<name of the file>');
    const key = keyFor(grant, filename);
    await deps.guard.assertTransferable(grant.bucket);
    const type = c.req.query('type');
    const post = await createPresignedPost(deps.presignS3, {
      Bucket: grant.bucket,
      Key: key,
      Conditions: [['content-length-range', 0, maxObjectSizeBytes]],
      Fields: type ? { 'Content-Type': type } : {},
      Expires: partUrlTtlSeconds,
    });
    return c.json({ method: 'POST', url: post.url, fields: post.fields, headers: {} });
  })
  .post('/companion/:token/s3/multipart', async (c) => {
    const body = await jsonBody(c, createSchema);
    const grant = c.get('grant');
    const key = keyFor(grant, body.filename);
    const transfer = await createMultipartTransfer(c.get('deps'), c.get('principal'), {
      bucket: grant.bucket,
      key,
      sizeBytes: null,
      plan: null,
      ...(body.type ? { contentType: body.type } : {}),
    });
    return c.json({ key, uploadId: transfer.uploadId });
  })
  .get('/companion/:token/s3/multipart/:uploadId/batch', async (c) => {
    const transfer = await grantedUpload(c);
    const numbers = (c.req.query('partNumbers') ?? '').split(',').filter(Boolean).map(partNumberParam);
    if (numbers.length === 0 || numbers.length > 100) throw new ServiceError('InvalidQuery', 'partNumbers must list 1 to 100 part numbers');
    const { parts } = await signPartUrls(c.get('deps'), transfer, numbers);
    return c.json({ presignedUrls: Object.fromEntries(parts.map((p) => [p.partNumber, p.url])) });
  })
  .get('/companion/:token/s3/multipart/:uploadId/:partNumber', async (c) => {
    const transfer = await grantedUpload(c);
    const { parts } = await signPartUrls(c.get('deps'), transfer, [partNumberParam(c.req.param('partNumber'))]);
    return c.json({ url: parts[0]!.url, expires: partUrlTtlSeconds });
  })
  .get('/companion/:token/s3/multipart/:uploadId', async (c) => {
    const transfer = await grantedUpload(c);
    const parts = await listUploadedParts(c.get('deps'), transfer);
    return c.json(parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, Size: p.sizeBytes })));
  })
  .post('/companion/:token/s3/multipart/:uploadId/complete', async (c) => {
    const transfer = await grantedUpload(c);
    const body = await jsonBody(c, completeSchema);
    const done = await completeMultipartTransfer(
      c.get('deps'),
      transfer,
      body.parts.map((p) => ({ partNumber: p.PartNumber, etag: p.ETag })),
    );
    return c.json({ location: done.location ?? `s3://${done.bucket}/${done.key}`, bucket: done.bucket, key: done.key });
  })
  .delete('/companion/:token/s3/multipart/:uploadId', async (c) => {
    const transfer = await grantedUpload(c);
    await abortMultipartTransfer(c.get('deps'), transfer);
    return c.json({});
  });
