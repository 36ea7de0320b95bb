import { Hono, type Context } from 'hono';
import { z } from 'zod';
import {
  completeFallbackUploadSchema,
  createFallbackUploadSchema,
  keyPrefixSchema,
  signPartsSchema,
} from '../../contracts';
import { ServiceError } from '../../core/errors';
import type { TransferItem } from '../../core/state/transfers';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { limitBody, readJson } from '../middleware/body';
import {
  abortMultipartTransfer,
  completeMultipartTransfer,
  createMultipartTransfer,
  listUploadedParts,
  planParts,
  signPartUrls,
} from '../multipart';
import { assertQueryKeys, nowSeconds, publicBaseUrl, servedBucket } from '../request';
import { sealToken } from '../../core/token';

const transferIdPattern = /^tr_[0-9a-f]{20}$/;

/** A fallback upload the caller may write to, or 404 (never 403: ids of other scopes are not confirmed). */
export async function ownedUpload(c: Context<AppEnv>, id: string): Promise<TransferItem> {
  const transfer = transferIdPattern.test(id) ? await c.get('deps').transfers.get(id) : undefined;
  const principal = c.get('principal');
  if (!transfer || !(principal.buckets === '*' || principal.buckets.includes(transfer.bucket))) {
    throw new ServiceError('NoSuchTransfer', `no transfer ${id.slice(0, 40)}`);
  }
  requireScope(principal, transfer.bucket, 'write');
  return transfer;
}

const companionGrantRequestSchema = z.strictObject({
  bucket: z.string(),
  keyPrefix: keyPrefixSchema.default(''),
  expiresInSeconds: z.number().int().min(60).max(86_400).default(3600),
});

/**
 * HTTP-fallback multipart uploads: bytes go from the client straight to S3 through presigned part
 * URLs; these routes only create, sign, list, complete and abort.
 */
export const fallbackRoutes = new Hono<AppEnv>()
  .use('/v1/fallback/*', authenticate(['bearer', 'basic']), limitBody(64 * 1024))
  .post('/v1/fallback/uploads', async (c) => {
    assertQueryKeys(c, []);
    const body = await readJson(c, createFallbackUploadSchema);
    const bucket = servedBucket(c, body.bucket);
    const principal = c.get('principal');
    requireScope(principal, bucket, 'write');
    const plan = planParts(body.sizeBytes, body.partSizeBytes);
    const transfer = await createMultipartTransfer(c.get('deps'), principal, {
      bucket,
      key: body.key,
      sizeBytes: body.sizeBytes,
      plan,
      ...(body.contentType ? { contentType: body.contentType } : {}),
    });
    return c.json(
      { transferId: transfer.id, uploadId: transfer.uploadId, bucket, key: body.key, sizeBytes: body.sizeBytes, ...plan },
      201,
    );
  })
  .post('/v1/fallback/uploads/:id/parts', async (c) => {
    const transfer = await ownedUpload(c, c.req.param('id'));
    const body = await readJson(c, signPartsSchema);
    return c.json(await signPartUrls(c.get('deps'), transfer, body.partNumbers));
  })
  .get('/v1/fallback/uploads/:id/parts', async (c) => {
    const transfer = await ownedUpload(c, c.req.param('id'));
    return c.json({ parts: await listUploadedParts(c.get('deps'), transfer) });
  })
  .post('/v1/fallback/uploads/:id/complete', async (c) => {
    const transfer = await ownedUpload(c, c.req.param('id'));
    const text = await c.req.text();
    // An empty body completes with every part S3 holds; a body lists the parts and their ETags.
    const body = text.trim() === '' ? {} : await readJson(c, completeFallbackUploadSchema);
    return c.json(await completeMultipartTransfer(c.get('deps'), transfer, body.parts));
  })
  .delete('/v1/fallback/uploads/:id', async (c) => {
    const transfer = await ownedUpload(c, c.req.param('id'));
    await abortMultipartTransfer(c.get('deps'), transfer);
    return c.json({ transferId: transfer.id, status: 'CANCELED' });
  })
  .post('/v1/fallback/companion', async (c) => {
    const body = await readJson(c, companionGrantRequestSchema);
    const bucket = servedBucket(c, body.bucket);
    const principal = c.get('principal');
    requireScope(principal, bucket, 'write');
    const deps = c.get('deps');
    await deps.guard.assertTransferable(bucket);
    const expiresAt = nowSeconds(deps) + body.expiresInSeconds;
    const token = sealToken(
      await deps.keyring(),
      'companion',
      { bucket, keyPrefix: body.keyPrefix, apiKeyId: principal.apiKeyId, expiresAt },
      deps.randomBytes(12),
    );
    return c.json(
      { companionUrl: `${publicBaseUrl(c)}/companion/${token}`, bucket, keyPrefix: body.keyPrefix, expiresAt: new Date(expiresAt * 1000).toISOString() },
      201,
    );
  });
