import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { checksumMetadataKey } from '../contracts';
import type { PartRecord, PartRepository } from '../core/state/parts';
import { isActive, type TransferRepository } from '../core/state/transfers';
import { RangeSet } from '../protocol/ranges';
import {
  compositeChecksum,
  MiB,
  partCountFor,
  partDigest,
  partSizeFor,
  singlePutMaxBytes,
  StreamLayout,
  type FileEntry,
} from '../protocol/transfer';

/**
 * The engine's upload side (DESIGN.md §1): the data stream of an upload, assembled into S3 parts.
 * A part is uploaded as soon as it is complete and recorded in the state table once S3 holds it; a
 * recorded part is never asked for again (resumeState). Files up to singlePutMaxBytes are one PutObject
 * at commit. Memory stays within about maxBufferedBytes + one part whatever the sender does, because the
 * driver advertises receiveLimit() as MAX_DATA and write() refuses bytes beyond it.
 */

const emptyDigest = partDigest(new Uint8Array(0));
const progressIntervalMs = 1000;

export class ChecksumMismatchError extends Error {
  override name = 'ChecksumMismatchError';
  readonly code = 'ChecksumMismatch';
  constructor(
    readonly fileIndex: number,
    readonly key: string,
    readonly expected: string,
    readonly actual: string,
    message = `file ${fileIndex} (${key}): the bytes received have checksum ${actual}, the sender declared ${expected}; the object was not stored`,
  ) {
    super(message);
  }
}

/** The sender broke flow control or the manifest: the driver closes the session. */
export class FlowControlError extends Error {
  override name = 'FlowControlError';
  readonly code = 'FlowControl';
}

export class SinkClosedError extends Error {
  override name = 'SinkClosedError';
  readonly code = 'SinkClosed';
  constructor() {
    super('the upload sink was closed');
  }
}

export class TransferEndedError extends Error {
  override name = 'TransferEndedError';
  readonly code = 'TransferNotActive';
}

/** A manifest entry, optionally with the checksum the sender declared before sending the bytes. */
export type SinkFile = FileEntry & { sha256?: string };

export interface UploadSinkOptions {
  s3: S3Client;
  parts: PartRepository;
  transfers: TransferRepository;
  bucket: string;
  keyPrefix: string;
  transferId: string;
  /** Default 128 MiB. */
  maxBufferedBytes?: number;
  /** UploadPart requests in flight at most. Default 4. */
  partConcurrency?: number;
  now?: () => Date;
  /** A file failed in the background (an S3 or state-table error after the SDK's retries). */
  onFileError?: (fileIndex: number, error: Error) => void;
  /**
   * Bytes became durable, so receiveLimit() may have moved: a sender that used all its credit sends
   * nothing that would otherwise prompt a new MAX_DATA.
   */
  onSettled?: () => void;
}

type Phase = 'receiving' | 'committed' | 'failed' | 'errored';

interface PartState {
  number: number;
  /** Stream offset of the part's first byte. */
  start: number;
  sizeBytes: number;
  buffer: Uint8Array;
  /** Filled ranges, part-relative. */
  filled: RangeSet;
  digest?: Uint8Array;
}

interface FileState {
  index: number;
  key: string;
  start: number;
  sizeBytes: number;
  partSizeBytes: number;
  partCount: number;
  multipart: boolean;
  declaredChecksum: string | null;
  phase: Phase;
  /** The multipart upload, once created or found in the table. */
  uploadId: string | null;
  /** Whether the table was asked about this file (resumeState or lazily). */
  looked: boolean;
  ready?: Promise<void>;
  committing?: Promise<void>;
  checksum?: string;
  error?: Error;
  /** Parts being received or uploaded; a durable part leaves this map. */
  parts: Map<number, PartState>;
  waiter?: { resolve: () => void; reject: (error: Error) => void };
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
/** RGW answers NoSuchKey where S3 says NoSuchUpload (an aborted or completed upload). */
function isNoSuchUpload(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NoSuchUpload' || name === 'NoSuchKey' || $metadata?.httpStatusCode === 404;
}
const asError = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));

export class UploadSink {
  private readonly s3: S3Client;
  private readonly parts: PartRepository;
  private readonly transfers: TransferRepository;
  private readonly bucket: string;
  private readonly keyPrefix: string;
  private readonly transferId: string;
  private readonly maxBufferedBytes: number;
  private readonly partConcurrency: number;
  private readonly now: () => Date;
  private readonly onFileError?: (fileIndex: number, error: Error) => void;
  private readonly onSettled?: () => void;

  private readonly streamLayout = new StreamLayout();
  private readonly fileStates: FileState[] = [];
  /** Stream ranges that need no more bytes: durable, or of a file given up. */
  private readonly settled = new RangeSet();
  /** Complete parts waiting for an upload slot; bounded by the receive window (≤ maxBufferedBytes / part size + 1). */
  private readonly uploadQueue: { file: FileState; part: PartState }[] = [];
  private uploadsInFlight = 0;
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private stopped = false;
  private allocatedBytes = 0;
  private resumedBytes = 0;
  private receivedBytes = 0;
  private lastProgress: { at: number; bytes: number } | undefined;
  private progressInFlight: Promise<void> | undefined;

  constructor(options: UploadSinkOptions) {
    this.s3 = options.s3;
    this.parts = options.parts;
    this.transfers = options.transfers;
    this.bucket = options.bucket;
    this.keyPrefix = options.keyPrefix;
    this.transferId = options.transferId;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 128 * MiB;
    this.partConcurrency = options.partConcurrency ?? 4;
    this.now = options.now ?? (() => new Date());
    this.onFileError = options.onFileError;
    this.onSettled = options.onSettled;
    if (!(this.maxBufferedBytes >= 1)) throw new RangeError('maxBufferedBytes must be positive');
    if (!(this.partConcurrency >= 1)) throw new RangeError('partConcurrency must be at least 1');
  }

  get layout(): StreamLayout {
    return this.streamLayout;
  }

  /** Bytes held in part buffers now. */
  get bufferedBytes(): number {
    return this.allocatedBytes;
  }

  /** Bytes stored or accepted so far, including what an earlier session stored (progress). */
  get bytesTransferred(): number {
    return this.resumedBytes + this.receivedBytes;
  }

  fileError(index: number): Error | undefined {
    return this.fileStates[index]?.error;
  }

  addFiles(files: readonly SinkFile[]): void {
    for (const file of files) {
      this.streamLayout.add(file);
      const partSizeBytes = partSizeFor(file.size);
      this.fileStates.push({
        index: file.index,
        key: this.keyPrefix + file.path,
        start: this.streamLayout.start(file.index),
        sizeBytes: file.size,
        partSizeBytes,
        partCount: partCountFor(file.size),
        multipart: file.size > singlePutMaxBytes,
        declaredChecksum: file.sha256 ?? null,
        phase: 'receiving',
        uploadId: null,
        looked: false,
        parts: new Map(),
      });
    }
  }

  /**
   * The stream ranges [start, end) already durable from an earlier session: recorded parts of the
   * file's current multipart upload, and whole committed files. Call once, after the manifest and
   * before write(). Open multipart uploads are continued, not restarted.
   */
  async resumeState(): Promise<[number, number][]> {
    const transfer = await this.transfers.get(this.transferId);
    if (transfer && !isActive(transfer.status)) {
      throw new TransferEndedError(`transfer ${this.transferId} is ${transfer.status}; it takes no more data`);
    }
    const [records, recordedParts] = await Promise.all([this.parts.files(this.transferId), this.parts.allParts(this.transferId)]);
    const byIndex = new Map(records.map((r) => [r.fileIndex, r]));
    const partsByFile = new Map<number, PartRecord[]>();
    for (const part of recordedParts) {
      const list = partsByFile.get(part.fileIndex) ?? [];
      list.push(part);
      partsByFile.set(part.fileIndex, list);
    }
    const durable = new RangeSet();
    for (const file of this.fileStates) {
      if (file.looked) continue;
      file.looked = true;
      const record = byIndex.get(file.index);
      // A record for another key or size belongs to a different manifest: start that file afresh.
      if (!record || record.key !== file.key || record.sizeBytes !== file.sizeBytes) continue;
      if (record.status === 'committed') {
        file.phase = 'committed';
        file.checksum = record.checksum ?? undefined;
        durable.add(file.start, file.start + file.sizeBytes);
      } else if (record.status === 'open' && record.uploadId && file.multipart) {
        file.uploadId = record.uploadId;
        file.declaredChecksum = record.declaredChecksum ?? null;
        file.ready = Promise.resolve();
        for (const part of partsByFile.get(file.index) ?? []) {
          const [start, end] = this.partRange(file, part.partNumber);
          if (part.uploadId === record.uploadId && part.sizeBytes === end - start) durable.add(start, end);
        }
      }
    }
    for (const [start, end] of durable) {
      this.settled.add(start, end);
      this.resumedBytes += end - start;
    }
    return [...durable];
  }

  /**
   * The furthest stream offset (exclusive) the sink accepts now: advertise it as MAX_DATA. Never short
   * of the end of the lowest pending part, so a part larger than maxBufferedBytes (files over ~80 GB
   * have parts over 8 MiB) can still complete. Never past the manifest's end: no credit for bytes that
   * cannot exist.
   */
  receiveLimit(): number {
    const total = this.streamLayout.totalBytes;
    const frontier = this.frontier();
    const index = this.streamLayout.fileAt(frontier);
    if (index === undefined) return Math.min(total, frontier + this.maxBufferedBytes);
    const file = this.fileStates[index]!;
    const [, partEnd] = this.partRange(file, Math.floor((frontier - file.start) / file.partSizeBytes) + 1);
    return Math.min(total, Math.max(frontier + this.maxBufferedBytes, partEnd));
  }

  /**
   * Bytes of the data stream, in any order, each at most once. Bytes of ranges already durable (or of a
   * failed file) are dropped. Throws FlowControlError beyond receiveLimit() or the manifest.
   */
  write(streamOffset: number, bytes: Uint8Array): void {
    if (this.stopped || bytes.length === 0) return;
    const end = streamOffset + bytes.length;
    if (end > this.streamLayout.totalBytes) {
      throw new FlowControlError(`data up to offset ${end} is beyond the manifest (${this.streamLayout.totalBytes} bytes)`);
    }
    if (end > this.receiveLimit()) {
      throw new FlowControlError(`data up to offset ${end} is beyond the advertised limit ${this.receiveLimit()}`);
    }
    let at = streamOffset;
    while (at < end) {
      const file = this.fileStates[this.streamLayout.fileAt(at)!]!;
      const number = Math.floor((at - file.start) / file.partSizeBytes) + 1;
      const [partStart, partEnd] = this.partRange(file, number);
      const segmentEnd = Math.min(end, partEnd);
      if (file.phase === 'receiving' && !this.settled.covers(at, segmentEnd)) {
        this.fill(file, number, partStart, partEnd, at, bytes.subarray(at - streamOffset, segmentEnd - streamOffset));
      }
      at = segmentEnd;
    }
    this.maybeFlushProgress();
  }

  /**
   * Stores the file once its bytes are durable and its checksum matches `expectedChecksum` (hex,
   * compositeChecksum). The object appears whole or not at all. Rejects with ChecksumMismatchError
   * (the file is failed and its upload aborted), the file's background error, or SinkClosedError.
   * Idempotent while in progress.
   */
  commitFile(index: number, expectedChecksum: string): Promise<void> {
    const file = this.fileStates[index];
    if (!file) return Promise.reject(new RangeError(`no file ${index}`));
    if (file.phase === 'committed') {
      if (file.checksum === expectedChecksum) return Promise.resolve();
      const message = `file ${index} (${file.key}) is already stored with checksum ${file.checksum}, not ${expectedChecksum}; the stored object is unchanged`;
      return Promise.reject(new ChecksumMismatchError(index, file.key, expectedChecksum, file.checksum ?? 'unknown', message));
    }
    if (file.phase !== 'receiving') return Promise.reject(file.error ?? new Error(`file ${index} failed`));
    file.committing ??= this.commit(file, expectedChecksum).catch((error: unknown) => {
      file.committing = undefined;
      throw error;
    });
    return file.committing;
  }

  /** Writes progress to the transfer record now (the sink also does so about every second on its own). */
  flushProgress(): Promise<void> {
    this.progressInFlight ??= this.writeProgress().finally(() => (this.progressInFlight = undefined));
    return this.progressInFlight;
  }

  /**
   * Stops as a crash would: in-flight requests are abandoned, buffers dropped, nothing more recorded.
   * Durable parts and open multipart uploads stay for a later session to resume.
   */
  async close(): Promise<void> {
    await this.stop();
  }

  /** Explicit cancel: stops, aborts every open multipart upload of the transfer and marks its files failed. */
  async cancel(): Promise<void> {
    await this.stop();
    const records = await this.parts.files(this.transferId);
    const open = new Map<number, { key: string; uploadId: string | null }>();
    for (const record of records) if (record.status === 'open') open.set(record.fileIndex, record);
    await Promise.all(
      [...open].map(async ([fileIndex, { key, uploadId }]) => {
        if (uploadId) await this.abortUpload(key, uploadId);
        await this.parts.markFailed(this.transferId, fileIndex, 'canceled', this.now());
      }),
    );
  }

  // --- receiving -----------------------------------------------------------------------------------

  private frontier(): number {
    const first = this.settled.count > 0 ? this.settled.range(0) : undefined;
    return first && first[0] === 0 ? first[1] : 0;
  }

  /** [start, end) of part `number` (from 1) in stream offsets. */
  private partRange(file: FileState, number: number): [number, number] {
    const start = file.start + (number - 1) * file.partSizeBytes;
    return [start, Math.min(start + file.partSizeBytes, file.start + file.sizeBytes)];
  }

  private fill(file: FileState, number: number, partStart: number, partEnd: number, at: number, bytes: Uint8Array): void {
    let part = file.parts.get(number);
    if (!part) {
      part = { number, start: partStart, sizeBytes: partEnd - partStart, buffer: new Uint8Array(partEnd - partStart), filled: new RangeSet() };
      file.parts.set(number, part);
      this.allocatedBytes += part.sizeBytes;
    }
    if (part.digest) return; // complete already: a duplicate
    const offset = at - partStart;
    const added = part.filled.add(offset, offset + bytes.length);
    if (added === 0) return;
    part.buffer.set(bytes, offset);
    this.receivedBytes += added;
    if (part.filled.covers(0, part.sizeBytes)) {
      part.digest = partDigest(part.buffer);
      if (file.multipart) {
        this.uploadQueue.push({ file, part });
        this.pumpUploads();
      } else {
        this.notify(file);
      }
    }
  }

  private pumpUploads(): void {
    while (!this.stopped && this.uploadsInFlight < this.partConcurrency && this.uploadQueue.length > 0) {
      const { file, part } = this.uploadQueue.shift()!;
      if (file.phase !== 'receiving') continue;
      this.uploadsInFlight += 1;
      this.track(
        this.uploadPart(file, part).finally(() => {
          this.uploadsInFlight -= 1;
          this.pumpUploads();
        }),
      );
    }
  }

  /** Never rejects: a failure fails the file (onFileError), not the process. */
  private async uploadPart(file: FileState, part: PartState): Promise<void> {
    try {
      await this.ensureUpload(file);
      if (this.stopped || file.phase !== 'receiving') return;
      const result = await this.s3.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: file.key,
          UploadId: file.uploadId!,
          PartNumber: part.number,
          Body: part.buffer,
          ContentLength: part.sizeBytes,
        }),
        { abortSignal: this.abort.signal },
      );
      if (!result.ETag) throw new Error(`S3 returned no ETag for part ${part.number} of ${file.key}`);
      if (this.stopped) return; // as after a crash: S3 may hold the part, the table does not, so it is re-sent
      await this.parts.recordPart(
        {
          transferId: this.transferId,
          fileIndex: file.index,
          partNumber: part.number,
          etag: result.ETag,
          sizeBytes: part.sizeBytes,
          sha256: hex(part.digest!),
          uploadId: file.uploadId!,
        },
        this.now(),
      );
      if (this.stopped || file.phase !== 'receiving') return;
      this.dropPart(file, part);
      this.settled.add(part.start, part.start + part.sizeBytes);
      this.notify(file);
      this.onSettled?.();
    } catch (error) {
      if (!this.stopped) this.failLocally(file, asError(error));
    }
  }

  /** The file's multipart upload: the one in the table when open, else a new one recorded before any part. */
  private ensureUpload(file: FileState): Promise<void> {
    file.ready ??= (async () => {
      if (!file.looked) {
        file.looked = true;
        const record = await this.parts.getFile(this.transferId, file.index);
        if (record && record.key === file.key && record.sizeBytes === file.sizeBytes) {
          if (record.status === 'committed') throw new Error(`file ${file.index} (${file.key}) was committed by an earlier session; call resumeState() first`);
          if (record.status === 'open' && record.uploadId) {
            file.uploadId = record.uploadId;
            file.declaredChecksum = record.declaredChecksum ?? null;
            return;
          }
        }
      }
      const created = await this.s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: file.key,
          ...(file.declaredChecksum ? { Metadata: { [checksumMetadataKey]: file.declaredChecksum } } : {}),
        }),
        { abortSignal: this.abort.signal },
      );
      if (!created.UploadId) throw new Error(`S3 returned no upload id for ${file.key}`);
      if (this.stopped) {
        await this.abortUpload(file.key, created.UploadId);
        return;
      }
      const written = await this.parts.putFile({
        transferId: this.transferId,
        fileIndex: file.index,
        key: file.key,
        sizeBytes: file.sizeBytes,
        uploadId: created.UploadId,
        status: 'open',
        checksum: null,
        declaredChecksum: file.declaredChecksum,
        etag: null,
        error: null,
        updatedAt: this.now().toISOString(),
      });
      if (!written) {
        await this.abortUpload(file.key, created.UploadId);
        throw new Error(`file ${file.index} (${file.key}) was committed by another session`);
      }
      file.uploadId = created.UploadId;
    })();
    return file.ready;
  }

  // --- committing ----------------------------------------------------------------------------------

  private async commit(file: FileState, expectedChecksum: string): Promise<void> {
    await this.waitComplete(file);
    const stored = file.multipart ? await this.completeMultipart(file, expectedChecksum) : await this.putSingle(file, expectedChecksum);
    file.phase = 'committed';
    file.checksum = stored;
    for (const part of file.parts.values()) this.dropPart(file, part);
    this.settled.add(file.start, file.start + file.sizeBytes);
  }

  private async completeMultipart(file: FileState, expectedChecksum: string): Promise<string> {
    await this.ensureUpload(file);
    const uploadId = file.uploadId!;
    const recorded = (await this.parts.partsOf(this.transferId, file.index))
      .filter((p) => p.uploadId === uploadId)
      .sort((a, b) => a.partNumber - b.partNumber);
    const complete =
      recorded.length === file.partCount &&
      recorded.every((p, i) => p.partNumber === i + 1 && p.sizeBytes === this.partRange(file, i + 1)[1] - this.partRange(file, i + 1)[0]);
    if (!complete) throw new Error(`file ${file.index} (${file.key}): the state table holds ${recorded.length} of ${file.partCount} parts`);
    // From the table, so parts an earlier engine process stored count too.
    const actual = compositeChecksum(recorded.map((p) => Buffer.from(p.sha256, 'hex')));
    if (actual !== expectedChecksum || (file.declaredChecksum !== null && file.declaredChecksum !== actual)) {
      await this.abortUpload(file.key, uploadId);
      throw await this.mismatch(file, file.declaredChecksum !== null && file.declaredChecksum !== actual ? file.declaredChecksum : expectedChecksum, actual);
    }
    let etag: string | null;
    try {
      const result = await this.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: file.key,
          UploadId: uploadId,
          MultipartUpload: { Parts: recorded.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
        }),
      );
      etag = result.ETag || null; // RGW answers an empty ETag
    } catch (error) {
      // An earlier session may have completed it and crashed before recording that.
      if (!isNoSuchUpload(error)) throw error;
      etag = await this.completedEarlier(file, recorded);
      if (etag === null) throw error;
    }
    await this.parts.markCommitted(this.transferId, file.index, { checksum: actual, etag }, this.now());
    return actual;
  }

  /** The object's ETag when it is exactly this multipart upload's result (S3's MD5-of-MD5s ETag), else null. */
  private async completedEarlier(file: FileState, recorded: PartRecord[]): Promise<string | null> {
    const md5s = recorded.map((p) => p.etag.replaceAll('"', ''));
    if (!md5s.every((m) => /^[0-9a-f]{32}$/i.test(m))) return null;
    const expected = `"${createHash('md5').update(Buffer.concat(md5s.map((m) => Buffer.from(m, 'hex')))).digest('hex')}-${md5s.length}"`;
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: file.key }));
      return head.ETag === expected && head.ContentLength === file.sizeBytes ? expected : null;
    } catch {
      return null;
    }
  }

  private async putSingle(file: FileState, expectedChecksum: string): Promise<string> {
    const part = file.parts.get(1);
    const actual = compositeChecksum([part?.digest ?? emptyDigest]);
    if (actual !== expectedChecksum) throw await this.mismatch(file, expectedChecksum, actual);
    const result = await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: file.key,
        Body: part?.buffer ?? new Uint8Array(0),
        ContentLength: file.sizeBytes,
        Metadata: { [checksumMetadataKey]: actual },
      }),
    );
    await this.parts.putFile({
      transferId: this.transferId,
      fileIndex: file.index,
      key: file.key,
      sizeBytes: file.sizeBytes,
      uploadId: null,
      status: 'committed',
      checksum: actual,
      declaredChecksum: file.declaredChecksum,
      etag: result.ETag ?? null,
      error: null,
      updatedAt: this.now().toISOString(),
    });
    return actual;
  }

  /** Fails the file for good (its upload is already aborted) and returns the error to throw. */
  private async mismatch(file: FileState, expected: string, actual: string): Promise<ChecksumMismatchError> {
    const error = new ChecksumMismatchError(file.index, file.key, expected, actual);
    const failed = {
      transferId: this.transferId,
      fileIndex: file.index,
      key: file.key,
      sizeBytes: file.sizeBytes,
      uploadId: file.uploadId,
      checksum: null,
      declaredChecksum: file.declaredChecksum,
      etag: null,
      error: error.message,
      updatedAt: this.now().toISOString(),
    };
    if (file.multipart) await this.parts.markFailed(this.transferId, file.index, error.message, this.now());
    else await this.parts.putFile({ ...failed, status: 'failed' });
    this.giveUp(file, 'failed', error);
    return error;
  }

  private waitComplete(file: FileState): Promise<void> {
    return new Promise((resolve, reject) => {
      file.waiter = { resolve, reject };
      this.notify(file);
    });
  }

  /** Settles the commit waiter of `file` when its bytes are all durable (multipart) or all here (single put). */
  private notify(file: FileState): void {
    const waiter = file.waiter;
    if (!waiter) return;
    let error: Error | undefined;
    if (this.stopped) error = new SinkClosedError();
    else if (file.phase !== 'receiving') error = file.error ?? new Error(`file ${file.index} is ${file.phase}`);
    const end = file.start + file.sizeBytes;
    const done = file.multipart ? this.settled.covers(file.start, end) : file.sizeBytes === 0 || file.parts.get(1)?.digest !== undefined;
    if (!error && !done) return;
    file.waiter = undefined;
    if (error) waiter.reject(error);
    else waiter.resolve();
  }

  // --- failure and teardown ------------------------------------------------------------------------

  /** A background failure: the file stops here, its upload stays open for a later session. */
  private failLocally(file: FileState, error: Error): void {
    if (file.phase !== 'receiving') return;
    this.giveUp(file, 'errored', error);
    this.onFileError?.(file.index, error);
  }

  private giveUp(file: FileState, phase: 'failed' | 'errored', error: Error): void {
    file.phase = phase;
    file.error = error;
    for (const part of [...file.parts.values()]) this.dropPart(file, part);
    // Its bytes are not wanted any more, so the receive window moves on past it.
    this.settled.add(file.start, file.start + file.sizeBytes);
    this.notify(file);
  }

  private dropPart(file: FileState, part: PartState): void {
    if (file.parts.get(part.number) !== part) return;
    file.parts.delete(part.number);
    this.allocatedBytes -= part.sizeBytes;
  }

  private async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.abort.abort();
      this.uploadQueue.length = 0;
      for (const file of this.fileStates) {
        for (const part of [...file.parts.values()]) this.dropPart(file, part);
        this.notify(file);
      }
    }
    await Promise.allSettled([...this.tasks]);
  }

  private track(task: Promise<unknown>): void {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task)).catch(() => undefined);
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (error) {
      if (!isNoSuchUpload(error)) throw error;
    }
  }

  // --- progress ------------------------------------------------------------------------------------

  private maybeFlushProgress(): void {
    const nowMs = this.now().getTime();
    if (this.progressInFlight || (this.lastProgress && nowMs - this.lastProgress.at < progressIntervalMs)) return;
    this.track(this.flushProgress().catch(() => undefined)); // progress is advisory; the next flush retries
  }

  private async writeProgress(): Promise<void> {
    const now = this.now();
    const bytes = this.bytesTransferred;
    const last = this.lastProgress;
    const elapsedMs = last ? now.getTime() - last.at : 0;
    // bytes × 8 bits ÷ ms = kbit/s
    const rateKbps = last && elapsedMs > 0 ? Math.round(((bytes - last.bytes) * 8) / elapsedMs) : 0;
    this.lastProgress = { at: now.getTime(), bytes };
    await this.transfers.updateProgress(this.transferId, bytes, rateKbps, now);
  }
}
