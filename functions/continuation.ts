import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  checksumMetadataKey,
  maxDownloadFilesPerCall,
  objectKeyProblem,
  type CompletedFile,
  type DownloadUrls,
  type FileUploadRequest,
  type FileUploadState,
  type RecordedPart,
  type SignedFileParts,
  type SignFilePartsRequest,
  type Transfer,
} from '../contracts';
import { NoSuchPathError, resolveDownloadPaths, TooManyFilesError } from '../core/download-paths';
import { ServiceError } from '../core/errors';
import type { FileRecord, PartRecord } from '../core/state/parts';
import { publicTransfer, type TransferItem } from '../core/state/transfers';
import { compositeChecksum, partCountFor, partDigest, partSizeFor } from '../protocol/transfer';
import type { AppDeps } from './deps';
import { isNoSuchUpload, listPartsOf, partUrlTtlSeconds, unquote } from './multipart';

/**
 * HTTP fallback that continues a transfer (README "When UDP is blocked"): the same FileRecord, the same
 * S3 multipart upload and the same part layout as the engine (engine-service/upload-sink.ts), so parts
 * the engine made durable are never sent again and a file is verified and completed exactly as on the
 * UDP path. Bytes go from the client straight to S3 through presigned URLs.
 */

/** Missing part or file numbers quoted in an error, at most. */
const maxQuotedNumbers = 10;
/** HeadObjects in flight while a downloads call reads objects' checksums. */
const headConcurrency = 16;

interface FileLayout {
  sizeBytes: number;
  partSizeBytes: number;
  partCount: number;
}

/** The engine's layout (protocol/transfer.ts): a file of up to 8 MiB is one part; a 0-byte file is one empty part. */
function layoutOf(sizeBytes: number): FileLayout {
  return { sizeBytes, partSizeBytes: partSizeFor(sizeBytes), partCount: partCountFor(sizeBytes) };
}

function partSizeOf(layout: FileLayout, partNumber: number): number {
  return partNumber < layout.partCount ? layout.partSizeBytes : layout.sizeBytes - layout.partSizeBytes * (layout.partCount - 1);
}

function quoteNumbers(numbers: readonly number[]): string {
  const shown = numbers.slice(0, maxQuotedNumbers).join(', ');
  return numbers.length > maxQuotedNumbers ? `${shown}, … (${numbers.length} in all)` : shown;
}

function describeFile(record: Pick<FileRecord, 'fileIndex' | 'key'>): string {
  return `file ${record.fileIndex} (${record.key})`;
}

/** Recorded parts of the file's current upload that fit its layout, in part order: the durable ones. */
function durableParts(records: readonly PartRecord[], file: Pick<FileRecord, 'uploadId'>, layout: FileLayout): PartRecord[] {
  return records
    .filter((p) => p.uploadId === file.uploadId && p.partNumber <= layout.partCount && p.sizeBytes === partSizeOf(layout, p.partNumber))
    .sort((a, b) => a.partNumber - b.partNumber);
}

function toRecordedPart(p: Pick<PartRecord, 'partNumber' | 'sizeBytes' | 'sha256' | 'etag' | 'transport'>): RecordedPart {
  return { partNumber: p.partNumber, sizeBytes: p.sizeBytes, sha256: p.sha256, etag: p.etag, transport: p.transport ?? 'udp' };
}

async function abortUpload(deps: AppDeps, bucket: string, key: string, uploadId: string): Promise<void> {
  try {
    await deps.s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  } catch (error) {
    if (!isNoSuchUpload(error)) throw error;
  }
}

async function fileState(deps: AppDeps, record: FileRecord & { status: 'open' | 'committed' }): Promise<FileUploadState> {
  const layout = layoutOf(record.sizeBytes);
  const parts = record.uploadId ? durableParts(await deps.parts.partsOf(record.transferId, record.fileIndex), record, layout) : [];
  return {
    fileIndex: record.fileIndex,
    key: record.key,
    status: record.status,
    uploadId: record.uploadId,
    partSizeBytes: layout.partSizeBytes,
    partCount: layout.partCount,
    parts: parts.map(toRecordedPart),
  };
}

/** The same file as the one recorded, or 409 FileMismatch (a failed record may be started afresh). */
function assertSameFile(record: FileRecord, key: string, request: FileUploadRequest): void {
  if (record.key !== key || record.sizeBytes !== request.sizeBytes) {
    throw new ServiceError(
      'FileMismatch',
      `file ${record.fileIndex} of this transfer is ${record.key} (${record.sizeBytes} bytes), not ${key} (${request.sizeBytes} bytes)`,
    );
  }
  // `?? null`: attributes written as undefined are absent from the item.
  const held = (record.status === 'committed' ? record.checksum : record.status === 'open' ? record.declaredChecksum : null) ?? null;
  if (held !== null && held !== request.sha256) {
    const what = record.status === 'committed' ? 'is already stored with' : 'was declared with';
    throw new ServiceError('FileMismatch', `${describeFile(record)} ${what} checksum ${held}, not ${request.sha256}; the local file is not the one this transfer began with`);
  }
}

/**
 * Finds the file's upload (the engine's, or one begun here) or starts it: a multipart upload with the
 * declared checksum as metadata and an open FileRecord, as the engine records it. A 0-byte file gets
 * no multipart upload (uploadId null): completeFile stores it with one PutObject.
 */
export async function openFileUpload(deps: AppDeps, transfer: TransferItem, fileIndex: number, request: FileUploadRequest): Promise<FileUploadState> {
  const key = transfer.keyPrefix + request.path;
  const problem = objectKeyProblem(key);
  if (problem) throw new ServiceError('InvalidObjectKey', `"${key.slice(0, 200)}" is not a usable object key: it ${problem}`);
  // A lost race for the record is followed by reading the winner's: two rounds suffice.
  for (let round = 0; round < 3; round += 1) {
    const record = await deps.parts.getFile(transfer.id, fileIndex);
    if (record) assertSameFile(record, key, request);
    if (record && record.status !== 'failed') return fileState(deps, { ...record, status: record.status });
    await deps.guard.assertTransferable(transfer.bucket);
    let uploadId: string | null = null;
    if (request.sizeBytes > 0) {
      const created = await deps.s3.send(
        new CreateMultipartUploadCommand({ Bucket: transfer.bucket, Key: key, Metadata: { [checksumMetadataKey]: request.sha256 } }),
      );
      if (!created.UploadId) throw new Error(`S3 returned no upload id for ${key}`);
      uploadId = created.UploadId;
    }
    const claimed: FileRecord & { status: 'open' } = {
      transferId: transfer.id,
      fileIndex,
      key,
      sizeBytes: request.sizeBytes,
      uploadId,
      status: 'open',
      checksum: null,
      declaredChecksum: request.sha256,
      etag: null,
      error: null,
      updatedAt: deps.now().toISOString(),
    };
    if (await deps.parts.claimFile(claimed)) return fileState(deps, claimed);
    if (uploadId) await abortUpload(deps, transfer.bucket, key, uploadId);
  }
  throw new Error(`file ${fileIndex} of transfer ${transfer.id}: its record kept changing while its upload was being started`);
}

type OpenUpload = FileRecord & { status: 'open'; uploadId: string };

/** The file's open multipart upload, or 404 NoSuchUpload saying why there is none. */
async function openUploadOf(deps: AppDeps, transfer: TransferItem, fileIndex: number): Promise<{ record: OpenUpload; layout: FileLayout }> {
  const record = await deps.parts.getFile(transfer.id, fileIndex);
  const where = `/v1/transfers/${transfer.id}/files/${fileIndex}/upload`;
  if (!record) throw new ServiceError('NoSuchUpload', `file ${fileIndex} of transfer ${transfer.id} has no upload yet; start it with POST ${where}`);
  if (record.status === 'failed') {
    throw new ServiceError('NoSuchUpload', `${describeFile(record)} failed (${record.error ?? 'no reason recorded'}); start it afresh with POST ${where}`);
  }
  if (record.status === 'committed') throw new ServiceError('NoSuchUpload', `${describeFile(record)} is already stored; it takes no more parts`);
  if (record.uploadId === null) throw new ServiceError('NoSuchUpload', `${describeFile(record)} is empty: it has no parts; complete it`);
  return { record: { ...record, status: 'open', uploadId: record.uploadId }, layout: layoutOf(record.sizeBytes) };
}

function assertWithinLayout(record: FileRecord, layout: FileLayout, partNumbers: readonly number[]): void {
  const beyond = partNumbers.find((n) => n > layout.partCount);
  if (beyond !== undefined) {
    throw new ServiceError('InvalidPartSize', `part ${beyond} is beyond the last part (${layout.partCount}) of ${describeFile(record)}`);
  }
}

/**
 * Presigned UploadPart URLs with Content-MD5 signed in: S3 refuses a body whose MD5 is not the one the
 * client declared, so a part is stored exactly as the client hashed it.
 */
export async function signFileParts(deps: AppDeps, transfer: TransferItem, fileIndex: number, request: SignFilePartsRequest): Promise<SignedFileParts> {
  const numbers = request.parts.map((p) => p.partNumber);
  if (new Set(numbers).size !== numbers.length) throw new ServiceError('ValidationError', 'a part number is listed twice');
  const { record, layout } = await openUploadOf(deps, transfer, fileIndex);
  assertWithinLayout(record, layout, numbers);
  await deps.guard.assertTransferable(transfer.bucket);
  const expiresAt = new Date(deps.now().getTime() + partUrlTtlSeconds * 1000).toISOString();
  const parts = await Promise.all(
    request.parts.map(async ({ partNumber, md5 }) => ({
      partNumber,
      url: await getSignedUrl(
        deps.presignS3,
        new UploadPartCommand({ Bucket: transfer.bucket, Key: record.key, UploadId: record.uploadId, PartNumber: partNumber, ContentMD5: md5 }),
        { expiresIn: partUrlTtlSeconds, signableHeaders: new Set(['content-md5']) },
      ),
      sizeBytes: partSizeOf(layout, partNumber),
      headers: { 'content-md5': md5 },
    })),
  );
  return { parts, expiresAt };
}

/**
 * Records a part the client PUT, once S3 confirms it holds that part in this upload with that ETag and
 * the layout's size. Recording again is harmless (the same facts).
 */
export async function recordFilePart(
  deps: AppDeps,
  transfer: TransferItem,
  fileIndex: number,
  partNumber: number,
  reported: { etag: string; sha256: string },
): Promise<RecordedPart> {
  const { record, layout } = await openUploadOf(deps, transfer, fileIndex);
  assertWithinLayout(record, layout, [partNumber]);
  const [held] = await listPartsOf(deps, { bucket: transfer.bucket, key: record.key, uploadId: record.uploadId }, { fromPart: partNumber, limit: 1 });
  if (!held || held.partNumber !== partNumber) {
    throw new ServiceError('PartNotFound', `S3 holds no part ${partNumber} of ${describeFile(record)}; PUT it through a signed URL first`);
  }
  if (unquote(held.etag) !== unquote(reported.etag)) {
    throw new ServiceError('PartMismatch', `S3 holds part ${partNumber} of ${describeFile(record)} with ETag ${held.etag}, not ${reported.etag}`);
  }
  const expected = partSizeOf(layout, partNumber);
  if (held.sizeBytes !== expected) {
    throw new ServiceError('PartMismatch', `part ${partNumber} of ${describeFile(record)} holds ${held.sizeBytes} bytes; its layout needs ${expected}`);
  }
  const part = {
    transferId: transfer.id,
    fileIndex,
    partNumber,
    etag: held.etag,
    sizeBytes: expected,
    sha256: reported.sha256,
    uploadId: record.uploadId,
    transport: 'http' as const,
  };
  await deps.parts.recordPart(part, deps.now());
  return toRecordedPart(part);
}

/** Fails the file for good (its upload aborted, nothing stored) and returns the 422 to throw. */
async function checksumMismatch(deps: AppDeps, bucket: string, record: FileRecord, expected: string, actual: string): Promise<ServiceError> {
  const message = `${describeFile(record)}: the recorded parts have checksum ${actual}, the sender declared ${expected}; the object was not stored, upload the file again`;
  if (record.uploadId) await abortUpload(deps, bucket, record.key, record.uploadId);
  await deps.parts.markFailed(record.transferId, record.fileIndex, message, deps.now());
  return new ServiceError('ChecksumMismatch', message);
}

/** The object's ETag when it is exactly this multipart upload's result (S3's MD5-of-MD5s ETag), else null. */
async function completedEarlier(deps: AppDeps, bucket: string, record: FileRecord, parts: readonly PartRecord[]): Promise<string | null> {
  const md5s = parts.map((p) => unquote(p.etag));
  if (!md5s.every((m) => /^[0-9a-f]{32}$/i.test(m))) return null;
  const expected = `"${createHash('md5').update(Buffer.concat(md5s.map((m) => Buffer.from(m, 'hex')))).digest('hex')}-${md5s.length}"`;
  try {
    const head = await deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: record.key }));
    return head.ETag === expected && head.ContentLength === record.sizeBytes ? expected : null;
  } catch {
    return null;
  }
}

/**
 * Completes the file as the engine does: every part of its layout recorded for this upload, their
 * composite checksum equal to the declared one (else the upload is aborted and the file failed), S3
 * holding exactly the recorded parts, then CompleteMultipartUpload and the record committed.
 * Idempotent once committed with the same checksum.
 */
export async function completeFile(deps: AppDeps, transfer: TransferItem, fileIndex: number, sha256: string): Promise<CompletedFile> {
  const record = await deps.parts.getFile(transfer.id, fileIndex);
  const where = `/v1/transfers/${transfer.id}/files/${fileIndex}/upload`;
  if (!record) throw new ServiceError('NoSuchUpload', `file ${fileIndex} of transfer ${transfer.id} has no upload yet; start it with POST ${where}`);
  const done = (checksum: string, etag: string | null): CompletedFile => ({ fileIndex, key: record.key, checksum, etag });
  if (record.status === 'committed') {
    if (record.checksum === sha256) return done(sha256, record.etag);
    throw new ServiceError('ChecksumMismatch', `${describeFile(record)} is already stored with checksum ${record.checksum}, not ${sha256}; the stored object is unchanged`);
  }
  if (record.status === 'failed') {
    throw new ServiceError('NoSuchUpload', `${describeFile(record)} failed (${record.error ?? 'no reason recorded'}); start it afresh with POST ${where}`);
  }
  await deps.guard.assertTransferable(transfer.bucket);
  const layout = layoutOf(record.sizeBytes);
  const declared = record.declaredChecksum ?? null;

  if (record.uploadId === null) {
    const actual = compositeChecksum([partDigest(new Uint8Array(0))]);
    if (record.sizeBytes !== 0) throw new Error(`${describeFile(record)} of ${record.sizeBytes} bytes has no upload id`);
    if (actual !== sha256 || (declared !== null && declared !== actual)) {
      throw await checksumMismatch(deps, transfer.bucket, record, declared !== null && declared !== actual ? declared : sha256, actual);
    }
    const put = await deps.s3.send(
      new PutObjectCommand({ Bucket: transfer.bucket, Key: record.key, Body: new Uint8Array(0), ContentLength: 0, Metadata: { [checksumMetadataKey]: actual } }),
    );
    return commit(deps, transfer, record, { checksum: actual, etag: put.ETag || null }, 0, done);
  }

  const recorded = durableParts(await deps.parts.partsOf(transfer.id, fileIndex), record, layout);
  const have = new Set(recorded.map((p) => p.partNumber));
  const missing = Array.from({ length: layout.partCount }, (_, i) => i + 1).filter((n) => !have.has(n));
  if (missing.length > 0) {
    throw new ServiceError('MissingParts', `${missing.length} of ${layout.partCount} parts of ${describeFile(record)} are not recorded durable: ${quoteNumbers(missing)}`);
  }
  const actual = compositeChecksum(recorded.map((p) => Buffer.from(p.sha256, 'hex')));
  if (actual !== sha256 || (declared !== null && declared !== actual)) {
    throw await checksumMismatch(deps, transfer.bucket, record, declared !== null && declared !== actual ? declared : sha256, actual);
  }
  const upload = { bucket: transfer.bucket, key: record.key, uploadId: record.uploadId };
  let etag: string | null;
  try {
    const held = new Map((await listPartsOf(deps, upload)).map((p) => [p.partNumber, p]));
    for (const part of recorded) {
      const s3Part = held.get(part.partNumber);
      if (!s3Part) throw new ServiceError('PartNotFound', `S3 no longer holds part ${part.partNumber} of ${describeFile(record)}; PUT it again and record it`);
      if (unquote(s3Part.etag) !== unquote(part.etag)) {
        throw new ServiceError('PartMismatch', `S3 holds part ${part.partNumber} of ${describeFile(record)} with ETag ${s3Part.etag}, the record says ${part.etag}; PUT it again and record it`);
      }
    }
    const result = await deps.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: upload.bucket,
        Key: upload.key,
        UploadId: upload.uploadId,
        MultipartUpload: { Parts: recorded.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      }),
    );
    etag = result.ETag || null; // RGW answers an empty ETag
  } catch (error) {
    // An earlier call (or the engine) may have completed it and failed before recording that.
    const gone = isNoSuchUpload(error) || (error instanceof ServiceError && error.code === 'NoSuchUpload');
    etag = gone ? await completedEarlier(deps, transfer.bucket, record, recorded) : null;
    if (etag === null) throw error;
  }
  const httpBytes = recorded.filter((p) => p.transport === 'http').reduce((sum, p) => sum + p.sizeBytes, 0);
  return commit(deps, transfer, record, { checksum: actual, etag }, httpBytes, done);
}

async function commit(
  deps: AppDeps,
  transfer: TransferItem,
  record: FileRecord,
  result: { checksum: string; etag: string | null },
  httpBytes: number,
  done: (checksum: string, etag: string | null) => CompletedFile,
): Promise<CompletedFile> {
  const now = deps.now();
  if (await deps.parts.markCommitted(transfer.id, record.fileIndex, result, now)) {
    // Progress: what moved over HTTPS (the engine already counted what it received).
    if (httpBytes > 0) await deps.transfers.addBytesTransferred(transfer.id, httpBytes, now);
    return done(result.checksum, result.etag);
  }
  // Someone else (the engine, a retried call) committed it meanwhile.
  const current = await deps.parts.getFile(transfer.id, record.fileIndex);
  if (current?.status === 'committed' && current.checksum === result.checksum) return done(result.checksum, current.etag);
  throw new ServiceError('FileMismatch', `${describeFile(record)} changed state (${current?.status ?? 'no record'}) while it was being completed`);
}

/**
 * Ends an upload once files 0..files-1 are all stored (COMPLETED, with their bytes), as the engine ends
 * a session whose files are all done; a download ends on the client's word (its bytes never pass here).
 */
export async function finishTransfer(deps: AppDeps, transfer: TransferItem, files: number): Promise<Transfer> {
  let bytesTransferred: number | undefined;
  if (transfer.direction === 'upload') {
    const records = new Map((await deps.parts.files(transfer.id)).map((r) => [r.fileIndex, r]));
    const notStored: number[] = [];
    bytesTransferred = 0;
    for (let index = 0; index < files; index += 1) {
      const record = records.get(index);
      if (record?.status === 'committed') bytesTransferred += record.sizeBytes;
      else notStored.push(index);
    }
    if (notStored.length > 0) {
      const states = notStored.slice(0, maxQuotedNumbers).map((i) => `${i}: ${records.get(i)?.status ?? 'not started'}`);
      throw new ServiceError(
        'FilesIncomplete',
        `${notStored.length} of ${files} files of transfer ${transfer.id} are not stored (${states.join(', ')}${notStored.length > maxQuotedNumbers ? ', …' : ''})`,
      );
    }
  }
  const finished = await deps.transfers.finish(transfer.id, 'COMPLETED', deps.now(), bytesTransferred !== undefined ? { bytesTransferred } : {});
  if (!finished) throw new ServiceError('TransferNotActive', `transfer ${transfer.id} ended while it was being finished`);
  return publicTransfer(finished);
}

/** An object's size, ETag and stored checksum, or undefined when there is no such object. */
async function headObject(deps: AppDeps, bucket: string, key: string): Promise<{ sizeBytes: number; etag: string | null; sha256: string | null } | undefined> {
  try {
    const head = await deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { sizeBytes: head.ContentLength ?? 0, etag: head.ETag ?? null, sha256: head.Metadata?.[checksumMetadataKey] ?? null };
  } catch (error) {
    const { name, $metadata } = (error ?? {}) as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (name === 'NotFound' || name === 'NoSuchKey' || $metadata?.httpStatusCode === 404) return undefined;
    throw error;
  }
}

/** The paths expanded exactly as the engine expands them (core/download-paths.ts), as ServiceErrors. */
async function resolveDownloads(deps: AppDeps, transfer: TransferItem, paths: readonly string[]) {
  try {
    return await resolveDownloadPaths(deps.s3, transfer.bucket, transfer.keyPrefix, paths, { maxFiles: maxDownloadFilesPerCall });
  } catch (error) {
    if (error instanceof TooManyFilesError) {
      throw new ServiceError('TooManyFiles', `these paths name more than ${maxDownloadFilesPerCall} objects; ask for fewer paths or narrower prefixes per call`);
    }
    if (error instanceof NoSuchPathError) throw new ServiceError('NoSuchKey', error.message);
    throw error;
  }
}

/** Presigned GetObject URLs (Range works on them) for the objects the paths name. */
export async function downloadUrls(deps: AppDeps, transfer: TransferItem, paths: readonly string[]): Promise<DownloadUrls> {
  for (const path of paths) {
    // The engine's check of a download path (engine-service/session.ts checkPath).
    const trimmed = path.replace(/\/+$/, '') || 'x';
    const problem = objectKeyProblem(transfer.keyPrefix + trimmed) ?? objectKeyProblem(trimmed);
    if (problem) {
      throw new ServiceError('InvalidObjectKey', `"${path.slice(0, 200)}" is not a usable key below ${transfer.keyPrefix || 'the bucket'}: it ${problem}`);
    }
  }
  await deps.guard.assertTransferable(transfer.bucket);
  const resolved = await resolveDownloads(deps, transfer, paths);
  const expiresAt = new Date(deps.now().getTime() + partUrlTtlSeconds * 1000).toISOString();
  const files: DownloadUrls['files'] = [];
  // A listing has no metadata: each object's checksum comes from a HeadObject, a few at a time.
  for (let i = 0; i < resolved.length; i += headConcurrency) {
    const batch = await Promise.all(
      resolved.slice(i, i + headConcurrency).map(async (file) => {
        const head = await headObject(deps, transfer.bucket, file.key);
        if (!head) throw new ServiceError('NoSuchKey', `${file.path} was deleted while the download was being prepared`);
        const url = await getSignedUrl(deps.presignS3, new GetObjectCommand({ Bucket: transfer.bucket, Key: file.key }), { expiresIn: partUrlTtlSeconds });
        return { path: file.path, key: file.key, url, ...head };
      }),
    );
    files.push(...batch);
  }
  return { files, expiresAt };
}
