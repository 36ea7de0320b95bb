import { Hono, type Context } from 'hono';
import {
  completeFileRequestSchema,
  downloadUrlsRequestSchema,
  fileUploadRequestSchema,
  finishTransferRequestSchema,
  maxFilesPerTransfer,
  maxPartCount,
  recordFilePartRequestSchema,
  signFilePartsRequestSchema,
  transportChangeRequestSchema,
} from '../../contracts';
import { ServiceError } from '../../core/errors';
import { principalSeesBucket } from '../../core/state/principal';
import { isActive, publicTransfer, type TransferItem } from '../../core/state/transfers';
import { completeFile, downloadUrls, finishTransfer, openFileUpload, recordFilePart, signFileParts } from '../continuation';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { limitBody, readJson } from '../middleware/body';
import { assertQueryKeys } from '../request';

const transferIdPattern = /^tr_[0-9a-f]{20}$/;
const smallBodyBytes = 16 * 1024;
/** 100 paths of up to 1,024 bytes each, JSON-quoted. */
const downloadsBodyBytes = 128 * 1024;

type Direction = TransferItem['direction'];

/**
 * A transfer the caller may continue over HTTPS: in the caller's bucket scope (else 404, so ids of other
 * scopes are not confirmed), with `write` (uploads) or `read` (downloads), active, of the expected
 * direction, and set up with http_fallback other than 'false'.
 */
async function continuedTransfer(c: Context<AppEnv>, direction?: Direction): Promise<TransferItem> {
  assertQueryKeys(c, []);
  const id = c.req.param('id') ?? '';
  const transfer = transferIdPattern.test(id) ? await c.get('deps').transfers.get(id) : undefined;
  const principal = c.get('principal');
  if (!transfer || !principalSeesBucket(principal, transfer.bucket)) throw new ServiceError('NoSuchTransfer', `no transfer ${id.slice(0, 40)}`);
  requireScope(principal, transfer.bucket, transfer.direction === 'upload' ? 'write' : 'read');
  if (!isActive(transfer.status)) throw new ServiceError('TransferNotActive', `transfer ${transfer.id} has ended (${transfer.status})`);
  if (direction !== undefined && transfer.direction !== direction) {
    throw new ServiceError('WrongDirection', `transfer ${transfer.id} is ${transfer.direction === 'upload' ? 'an upload' : 'a download'}; this route is for ${direction}s`);
  }
  // Records from before http_fallback was kept, and /v1/fallback uploads, have no mode: not continuable.
  if (transfer.httpFallback === undefined || transfer.httpFallback === 'false') {
    throw new ServiceError(
      'HttpFallbackDisabled',
      transfer.httpFallback === 'false'
        ? `transfer ${transfer.id} was set up with http_fallback false (bucket ${transfer.bucket}'s preferences or the request); it continues over UDP only`
        : `transfer ${transfer.id} was not set up for HTTP fallback; set up a new transfer`,
    );
  }
  return transfer;
}

function integerParam(c: Context<AppEnv>, name: 'index' | 'partNumber', min: number, max: number): number {
  const raw = c.req.param(name) ?? '';
  const value = /^\d{1,6}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new ServiceError('ValidationError', `${name === 'index' ? 'file index' : 'part number'} "${raw.slice(0, 20)}" must be an integer from ${min} to ${max}`);
  }
  return value;
}

const fileIndexParam = (c: Context<AppEnv>) => integerParam(c, 'index', 0, maxFilesPerTransfer - 1);

/**
 * Continuing a transfer from upload_setup/download_setup over HTTPS when UDP is blocked or went silent
 * (README "When UDP is blocked"; logic in ../continuation.ts). Registered before `transferRoutes`, whose
 * `/v1/transfers/*` middleware would otherwise authenticate these requests a second time.
 */
export const continuationRoutes = new Hono<AppEnv>()
  .post('/v1/transfers/:id/transport', authenticate(['bearer', 'basic']), limitBody(smallBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c);
    const body = await readJson(c, transportChangeRequestSchema);
    if (body.transport === 'udp' && transfer.httpFallback === 'force') {
      throw new ServiceError('ValidationError', `transfer ${transfer.id} is HTTPS only (http_fallback force); it cannot switch to UDP`);
    }
    const deps = c.get('deps');
    const now = deps.now();
    const updated = await deps.transfers.recordTransportChange(transfer.id, { transport: body.transport, at: now.toISOString(), reason: body.reason }, now);
    if (!updated) throw new ServiceError('TransferNotActive', `transfer ${transfer.id} ended while its transport was being changed`);
    return c.json(publicTransfer(updated));
  })
  .post('/v1/transfers/:id/files/:index/upload', authenticate(['bearer', 'basic']), limitBody(smallBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c, 'upload');
    const index = fileIndexParam(c);
    const body = await readJson(c, fileUploadRequestSchema);
    const deps = c.get('deps');
    const state = await openFileUpload(deps, transfer, index, body);
    await deps.transfers.startIfQueued(transfer.id, deps.now());
    return c.json(state);
  })
  .post('/v1/transfers/:id/files/:index/parts', authenticate(['bearer', 'basic']), limitBody(smallBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c, 'upload');
    const index = fileIndexParam(c);
    const body = await readJson(c, signFilePartsRequestSchema);
    return c.json(await signFileParts(c.get('deps'), transfer, index, body));
  })
  .post('/v1/transfers/:id/files/:index/parts/:partNumber', authenticate(['bearer', 'basic']), limitBody(smallBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c, 'upload');
    const index = fileIndexParam(c);
    const partNumber = integerParam(c, 'partNumber', 1, maxPartCount);
    const body = await readJson(c, recordFilePartRequestSchema);
    return c.json(await recordFilePart(c.get('deps'), transfer, index, partNumber, body));
  })
  .post('/v1/transfers/:id/files/:index/complete', authenticate(['bearer', 'basic']), limitBody(smallBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c, 'upload');
    const index = fileIndexParam(c);
    const body = await readJson(c, completeFileRequestSchema);
    return c.json(await completeFile(c.get('deps'), transfer, index, body.sha256));
  })
  .post('/v1/transfers/:id/finish', authenticate(['bearer', 'basic']), limitBody(smallBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c);
    const body = await readJson(c, finishTransferRequestSchema);
    return c.json(await finishTransfer(c.get('deps'), transfer, body.files));
  })
  .post('/v1/transfers/:id/downloads', authenticate(['bearer', 'basic']), limitBody(downloadsBodyBytes), async (c) => {
    const transfer = await continuedTransfer(c, 'download');
    const body = await readJson(c, downloadUrlsRequestSchema);
    const deps = c.get('deps');
    const urls = await downloadUrls(deps, transfer, body.paths);
    await deps.transfers.startIfQueued(transfer.id, deps.now());
    return c.json(urls);
  });
