import { Hono, type Context } from 'hono';
import { transferListQuerySchema } from '../../contracts';
import { ServiceError } from '../../core/errors';
import { principalSeesBucket } from '../../core/state/principal';
import { isActive, publicTransfer, type TransferItem } from '../../core/state/transfers';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { abortMultipartTransfer } from '../multipart';
import { servedBucket } from '../request';

const transferIdPattern = /^tr_[0-9a-f]{20}$/;

async function visibleTransfer(c: Context<AppEnv>, id: string): Promise<TransferItem> {
  const transfer = transferIdPattern.test(id) ? await c.get('deps').transfers.get(id) : undefined;
  if (!transfer || !principalSeesBucket(c.get('principal'), transfer.bucket)) {
    throw new ServiceError('NoSuchTransfer', `no transfer ${id.slice(0, 40)}`);
  }
  requireScope(c.get('principal'), transfer.bucket, 'read');
  return transfer;
}

/** Transfers as recorded in the state table by the API and the engines. */
export const transferRoutes = new Hono<AppEnv>()
  // `/v1/transfers/*` covers `/v1/transfers` too.
  .use('/v1/transfers/*', authenticate(['bearer', 'basic']))
  .get('/v1/transfers', async (c) => {
    const parsed = transferListQuerySchema.safeParse(c.req.query());
    if (!parsed.success) {
      throw new ServiceError('InvalidQuery', parsed.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; '));
    }
    const query = parsed.data;
    const principal = c.get('principal');
    let buckets: '*' | readonly string[] = principal.buckets;
    if (query.bucket !== undefined) {
      const bucket = servedBucket(c, query.bucket);
      requireScope(principal, bucket, 'read');
      buckets = [bucket];
    }
    const page = await c.get('deps').transfers.list({
      state: query.state,
      buckets,
      limit: query.limit,
      ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
    });
    return c.json({ transfers: page.transfers.map(publicTransfer), nextCursor: page.nextCursor });
  })
  .get('/v1/transfers/:id', async (c) => c.json(publicTransfer(await visibleTransfer(c, c.req.param('id')))))
  .post('/v1/transfers/:id/cancel', async (c) => {
    const transfer = await visibleTransfer(c, c.req.param('id'));
    requireScope(c.get('principal'), transfer.bucket, 'write');
    if (!isActive(transfer.status)) {
      throw new ServiceError('TransferNotActive', `transfer ${transfer.id} has already ended (${transfer.status})`);
    }
    const deps = c.get('deps');
    if (transfer.uploadId) {
      await abortMultipartTransfer(deps, transfer);
    } else if (!(await deps.transfers.finish(transfer.id, 'CANCELED', deps.now()))) {
      throw new ServiceError('TransferNotActive', `transfer ${transfer.id} ended while it was being canceled`);
    }
    return c.json(publicTransfer((await deps.transfers.get(transfer.id))!));
  });
