import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  NoSuchUpload,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  MiB,
  maxPartCount,
  maxPartSizeBytes,
  minPartSizeBytes,
  type UploadedPart,
} from '../contracts';
import { ServiceError } from '../core/errors';
import type { Principal } from '../core/state/principal';
import { newId } from '../core/state/secrets';
import { isActive, newTransfer, type TransferItem } from '../core/state/transfers';
import type { AppDeps } from './deps';

/** Presigned part URLs live long enough for a slow part on a bad link, not for days. */
export const partUrlTtlSeconds = 3600;

export interface PartPlan {
  partSizeBytes: number;
  partCount: number;
}

/** S3's part rules: 5 MiB..5 GiB per part except the last, at most 10,000 parts. */
export function planParts(sizeBytes: number, requestedPartSizeBytes?: number): PartPlan {
  const defaultPartSize = Math.max(8 * MiB, Math.ceil(Math.ceil(sizeBytes / maxPartCount) / MiB) * MiB);
  const partSizeBytes = requestedPartSizeBytes ?? defaultPartSize;
  const partCount = Math.max(1, Math.ceil(sizeBytes / partSizeBytes));
  if (partSizeBytes < minPartSizeBytes && partCount > 1) {
    throw new ServiceError('InvalidPartSize', `partSizeBytes must be at least ${minPartSizeBytes} (5 MiB) when the object has more than one part`);
  }
  if (partSizeBytes > maxPartSizeBytes) {
    throw new ServiceError('InvalidPartSize', `partSizeBytes must be at most ${maxPartSizeBytes} (5 GiB)`);
  }
  if (partCount > maxPartCount) {
    const smallest = Math.ceil(sizeBytes / maxPartCount);
    throw new ServiceError('TooManyParts', `${partCount} parts is more than S3's ${maxPartCount}; use partSizeBytes of at least ${smallest}`);
  }
  return { partSizeBytes, partCount };
}

export function expectedPartSize(plan: PartPlan, sizeBytes: number, partNumber: number): number {
  return partNumber < plan.partCount ? plan.partSizeBytes : sizeBytes - plan.partSizeBytes * (plan.partCount - 1);
}

export async function createMultipartTransfer(
  deps: AppDeps,
  principal: Principal,
  input: { bucket: string; key: string; sizeBytes: number | null; plan: PartPlan | null; contentType?: string },
): Promise<TransferItem> {
  await deps.guard.assertTransferable(input.bucket);
  const created = await deps.s3.send(
    new CreateMultipartUploadCommand({
      Bucket: input.bucket,
      Key: input.key,
      ...(input.contentType ? { ContentType: input.contentType } : {}),
    }),
  );
  if (!created.UploadId) throw new Error('S3 returned no UploadId');
  const transfer = newTransfer(
    {
      id: `tr_${newId(10)}`,
      bucket: input.bucket,
      direction: 'upload',
      transport: 'http',
      status: 'RUNNING',
      keyPrefix: input.key.includes('/') ? input.key.slice(0, input.key.lastIndexOf('/') + 1) : '',
      key: input.key,
      files: 1,
      bytesTotal: input.sizeBytes,
      ownerKeyId: principal.apiKeyId,
      uploadId: created.UploadId,
      ...(input.plan ? { partSizeBytes: input.plan.partSizeBytes } : {}),
      ...(input.contentType ? { contentType: input.contentType } : {}),
    },
    deps.now(),
  );
  await deps.transfers.create(transfer);
  await deps.transfers.recordUploadId(created.UploadId, transfer.id);
  return transfer;
}

function requireActiveUpload(transfer: TransferItem): { uploadId: string; key: string } {
  if (!transfer.uploadId || !transfer.key) {
    throw new ServiceError('NoSuchUpload', `transfer ${transfer.id} is not an HTTP multipart upload`);
  }
  if (!isActive(transfer.status)) {
    throw new ServiceError('TransferNotActive', `transfer ${transfer.id} has ended (${transfer.status})`);
  }
  return { uploadId: transfer.uploadId, key: transfer.key };
}

export async function signPartUrls(deps: AppDeps, transfer: TransferItem, partNumbers: readonly number[]) {
  const { uploadId, key } = requireActiveUpload(transfer);
  const plan = transfer.bytesTotal !== null && transfer.partSizeBytes ? planParts(transfer.bytesTotal, transfer.partSizeBytes) : null;
  const beyond = plan ? partNumbers.filter((n) => n > plan.partCount) : [];
  if (beyond.length > 0) {
    throw new ServiceError('InvalidPartSize', `part ${beyond[0]} is beyond the last part (${plan!.partCount}) of this upload`);
  }
  const unique = [...new Set(partNumbers)];
  const expiresAt = new Date(deps.now().getTime() + partUrlTtlSeconds * 1000).toISOString();
  const parts = await Promise.all(
    unique.map(async (partNumber) => ({
      partNumber,
      url: await getSignedUrl(
        deps.presignS3,
        new UploadPartCommand({ Bucket: transfer.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber }),
        { expiresIn: partUrlTtlSeconds },
      ),
      ...(plan && transfer.bytesTotal !== null ? { sizeBytes: expectedPartSize(plan, transfer.bytesTotal, partNumber) } : {}),
    })),
  );
  return { parts, expiresAt };
}

/** RGW answers NoSuchKey where S3 says NoSuchUpload (an aborted or completed upload). */
export function isNoSuchUpload(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as { name?: string; $metadata?: { httpStatusCode?: number } };
  return error instanceof NoSuchUpload || name === 'NoSuchUpload' || name === 'NoSuchKey' || $metadata?.httpStatusCode === 404;
}

/**
 * The parts S3 holds for a multipart upload, in part order (ListParts pages at 1,000): all of them, or
 * `limit` from part `fromPart` on. Throws ServiceError NoSuchUpload when the upload is gone.
 */
export async function listPartsOf(
  deps: Pick<AppDeps, 's3'>,
  upload: { bucket: string; key: string; uploadId: string },
  range: { fromPart?: number; limit?: number } = {},
): Promise<UploadedPart[]> {
  const parts: UploadedPart[] = [];
  const limit = range.limit ?? maxPartCount;
  let marker = range.fromPart !== undefined && range.fromPart > 1 ? String(range.fromPart - 1) : undefined;
  for (let page = 0; page <= maxPartCount / 1000 && parts.length < limit; page += 1) {
    let result;
    try {
      result = await deps.s3.send(
        new ListPartsCommand({
          Bucket: upload.bucket,
          Key: upload.key,
          UploadId: upload.uploadId,
          ...(marker ? { PartNumberMarker: marker } : {}),
          ...(limit < 1000 ? { MaxParts: limit } : {}),
        }),
      );
    } catch (error) {
      if (isNoSuchUpload(error)) {
        throw new ServiceError('NoSuchUpload', `the multipart upload of ${upload.key} no longer exists in S3 (aborted or expired)`);
      }
      throw error;
    }
    for (const p of result.Parts ?? []) {
      parts.push({ partNumber: p.PartNumber ?? 0, etag: p.ETag ?? '', sizeBytes: p.Size ?? 0 });
    }
    if (!result.IsTruncated) break;
    marker = String(result.NextPartNumberMarker ?? '');
  }
  return parts.slice(0, limit).sort((a, b) => a.partNumber - b.partNumber);
}

/** Every part S3 holds for the upload. */
export async function listUploadedParts(deps: AppDeps, transfer: TransferItem): Promise<UploadedPart[]> {
  const { uploadId, key } = requireActiveUpload(transfer);
  try {
    return await listPartsOf(deps, { bucket: transfer.bucket, key, uploadId });
  } catch (error) {
    if (error instanceof ServiceError && error.code === 'NoSuchUpload') {
      throw new ServiceError('NoSuchUpload', `the multipart upload of transfer ${transfer.id} no longer exists in S3 (aborted or expired)`);
    }
    throw error;
  }
}

export const unquote = (etag: string) => etag.replace(/^"|"$/g, '');

/**
 * Checks the parts S3 holds against the plan before completing, so an object is never committed short,
 * with a gap or with a part of the wrong size; with `clientParts`, their ETags must be S3's too.
 */
export function checkPartsComplete(
  transfer: Pick<TransferItem, 'bytesTotal' | 'partSizeBytes'>,
  held: readonly UploadedPart[],
  clientParts?: readonly { partNumber: number; etag: string }[],
): UploadedPart[] {
  let chosen = [...held];
  if (clientParts) {
    if (new Set(clientParts.map((p) => p.partNumber)).size !== clientParts.length) {
      throw new ServiceError('ValidationError', 'a part number is listed twice');
    }
    const byNumber = new Map(held.map((p) => [p.partNumber, p]));
    chosen = [];
    for (const part of [...clientParts].sort((a, b) => a.partNumber - b.partNumber)) {
      const heldPart = byNumber.get(part.partNumber);
      if (!heldPart) throw new ServiceError('MissingParts', `part ${part.partNumber} was never uploaded`);
      if (unquote(heldPart.etag) !== unquote(part.etag)) {
        throw new ServiceError('ValidationError', `part ${part.partNumber}: ETag ${part.etag} is not the one S3 holds (${heldPart.etag})`);
      }
      chosen.push(heldPart);
    }
  }
  if (chosen.length === 0) throw new ServiceError('MissingParts', 'no part has been uploaded yet');
  const missing = chosen.findIndex((p, i) => p.partNumber !== i + 1);
  if (missing !== -1) throw new ServiceError('MissingParts', `part ${missing + 1} is missing`);
  if (transfer.bytesTotal !== null && transfer.partSizeBytes) {
    const plan = planParts(transfer.bytesTotal, transfer.partSizeBytes);
    if (chosen.length < plan.partCount) {
      throw new ServiceError('MissingParts', `${plan.partCount - chosen.length} of ${plan.partCount} parts are missing, from part ${chosen.length + 1}`);
    }
    for (const part of chosen) {
      const expected = expectedPartSize(plan, transfer.bytesTotal, part.partNumber);
      if (part.sizeBytes !== expected) {
        throw new ServiceError('SizeMismatch', `part ${part.partNumber} holds ${part.sizeBytes} bytes; this upload needs ${expected}`);
      }
    }
  } else {
    const small = chosen.slice(0, -1).find((p) => p.sizeBytes < minPartSizeBytes);
    if (small) {
      throw new ServiceError('InvalidPartSize', `part ${small.partNumber} holds ${small.sizeBytes} bytes; every part but the last needs at least 5 MiB`);
    }
  }
  return chosen;
}

export async function completeMultipartTransfer(
  deps: AppDeps,
  transfer: TransferItem,
  clientParts?: readonly { partNumber: number; etag: string }[],
) {
  const { uploadId, key } = requireActiveUpload(transfer);
  const parts = checkPartsComplete(transfer, await listUploadedParts(deps, transfer), clientParts);
  const result = await deps.s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: transfer.bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
    }),
  );
  const sizeBytes = parts.reduce((sum, p) => sum + p.sizeBytes, 0);
  await deps.transfers.finish(transfer.id, 'COMPLETED', deps.now(), { bytesTransferred: sizeBytes });
  return {
    transferId: transfer.id,
    bucket: transfer.bucket,
    key,
    etag: result.ETag ?? null,
    location: result.Location ?? null,
    sizeBytes,
  };
}

export async function abortMultipartTransfer(deps: AppDeps, transfer: TransferItem): Promise<void> {
  const { uploadId, key } = requireActiveUpload(transfer);
  try {
    await deps.s3.send(new AbortMultipartUploadCommand({ Bucket: transfer.bucket, Key: key, UploadId: uploadId }));
  } catch (error) {
    if (!isNoSuchUpload(error)) throw error;
  }
  await deps.transfers.finish(transfer.id, 'CANCELED', deps.now());
}
