import { createHash, type Hash } from 'node:crypto';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { RangeSet } from '../protocol/ranges';
import { compositeChecksum, MiB, partDigest, partSizeFor, StreamLayout } from '../protocol/transfer';

/**
 * The engine's download side (DESIGN.md §1): the data stream of a download, read from S3 with ranged
 * GetObjects in stream order ahead of the sender. Memory is bounded: fetched bytes are held until the
 * receiver has them (release/skip), and fetching stops while readAheadBytes are held. Every byte of
 * every file is read, skipped ones included, so each file's composite checksum covers the whole object.
 */

export interface SourceFile {
  index: number;
  key: string;
  size: number;
  /** When known (resolve gives it), every ranged read must come from this version: a changed object fails its file. */
  etag?: string;
}

/** The object was replaced while its file was being read: its bytes would mix two versions. */
export class ObjectChangedError extends Error {
  override name = 'ObjectChangedError';
  readonly code = 'ObjectChanged';
  constructor(readonly key: string) {
    super(`${key} changed while it was being downloaded; download it again`);
  }
}

export interface DownloadSourceOptions {
  s3: S3Client;
  bucket: string;
  files: readonly SourceFile[];
  /** Bytes held at most (fetched or being fetched, not yet released). Default 32 MiB. */
  readAheadBytes?: number;
  /** Size of one ranged GetObject. Default 1 MiB. */
  chunkBytes?: number;
  /** GetObjects in flight at most. Default 4. */
  fetchConcurrency?: number;
  /** New bytes became readable. */
  onReadable?: () => void;
  /** A file could not be read (after the SDK's retries); its bytes will never become readable. */
  onFileError?: (fileIndex: number, error: Error) => void;
}

interface Chunk {
  start: number;
  end: number;
  file: FileState;
  bytes?: Uint8Array;
  hashed: boolean;
}

interface FileState {
  source: SourceFile;
  start: number;
  partSizeBytes: number;
  /** File-relative offset up to which bytes have been hashed (in order). */
  hashedBytes: number;
  hash?: Hash;
  digests: Uint8Array[];
  checksum?: string;
  error?: Error;
}

export class DownloadSource {
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly readAheadBytes: number;
  private readonly chunkBytes: number;
  private readonly fetchConcurrency: number;
  private readonly onReadable?: () => void;
  private readonly onFileError?: (fileIndex: number, error: Error) => void;
  private readonly streamLayout = new StreamLayout();
  private readonly files: FileState[] = [];
  /** Held chunks by stream start; at most readAheadBytes / chunkBytes + (files in the window) of them. */
  private readonly chunks = new Map<number, Chunk>();
  /** Stream ranges the receiver holds: never returned by read(), freed once hashed. */
  private readonly released = new RangeSet();
  private readonly abort = new AbortController();
  private heldBytes = 0;
  private nextFetch = 0;
  private fetchesInFlight = 0;
  private closed = false;

  constructor(options: DownloadSourceOptions) {
    this.s3 = options.s3;
    this.bucket = options.bucket;
    this.readAheadBytes = options.readAheadBytes ?? 32 * MiB;
    this.chunkBytes = options.chunkBytes ?? MiB;
    this.fetchConcurrency = options.fetchConcurrency ?? 4;
    this.onReadable = options.onReadable;
    this.onFileError = options.onFileError;
    if (!(this.chunkBytes >= 1 && this.readAheadBytes >= this.chunkBytes)) throw new RangeError('readAheadBytes must hold at least one chunk');
    if (!(this.fetchConcurrency >= 1)) throw new RangeError('fetchConcurrency must be at least 1');
    for (const source of options.files) {
      this.streamLayout.add({ index: source.index, path: source.key, size: source.size });
      const file: FileState = { source, start: this.streamLayout.start(source.index), partSizeBytes: partSizeFor(source.size), hashedBytes: 0, digests: [] };
      if (source.size === 0) file.checksum = compositeChecksum([partDigest(new Uint8Array(0))]);
      this.files.push(file);
    }
    this.pump();
  }

  get layout(): StreamLayout {
    return this.streamLayout;
  }

  /** Bytes held now (fetched or being fetched). */
  get bufferedBytes(): number {
    return this.heldBytes;
  }

  /**
   * Bytes at `streamOffset` readable now (a view, at most maxBytes, never across a chunk), or undefined:
   * not fetched yet (wait for onReadable), released, or of a failed file.
   */
  read(streamOffset: number, maxBytes: number): Uint8Array | undefined {
    if (this.released.has(streamOffset)) return undefined;
    const chunk = this.chunks.get(this.chunkStartAt(streamOffset) ?? -1);
    if (!chunk?.bytes || streamOffset >= chunk.end) return undefined;
    const from = streamOffset - chunk.start;
    return chunk.bytes.subarray(from, Math.min(from + maxBytes, chunk.bytes.length));
  }

  /** The receiver holds [start, end) for good (acknowledged): the bytes can go. */
  release(start: number, end: number): void {
    if (end <= start) return;
    this.released.add(start, end);
    for (const chunk of [...this.chunks.values()]) {
      if (chunk.end > start && chunk.start < end) this.maybeFree(chunk);
    }
    this.pump();
  }

  /** Resume: the receiver already has these ranges [start, end); they are read (for checksums) but never sent. */
  skip(ranges: readonly (readonly [number, number])[]): void {
    for (const [start, end] of ranges) this.release(start, end);
  }

  /** The file's composite checksum once all of it has been read, else undefined. */
  checksum(index: number): string | undefined {
    return this.files[index]?.checksum;
  }

  fileError(index: number): Error | undefined {
    return this.files[index]?.error;
  }

  /** Stops reading and drops every buffer. */
  close(): void {
    this.closed = true;
    this.abort.abort();
    this.chunks.clear();
    this.heldBytes = 0;
  }

  /** Stream start of the chunk holding `offset`: chunks are whole-MiB steps inside parts, never across files. */
  private chunkStartAt(offset: number): number | undefined {
    const index = this.streamLayout.fileAt(offset);
    if (index === undefined) return undefined;
    const file = this.files[index]!;
    const within = offset - file.start;
    const partStart = Math.floor(within / file.partSizeBytes) * file.partSizeBytes;
    return file.start + partStart + Math.floor((within - partStart) / this.chunkBytes) * this.chunkBytes;
  }

  private pump(): void {
    const total = this.streamLayout.totalBytes;
    while (!this.closed && this.fetchesInFlight < this.fetchConcurrency && this.nextFetch < total) {
      const index = this.streamLayout.fileAt(this.nextFetch)!;
      const file = this.files[index]!;
      const fileEnd = file.start + file.source.size;
      if (file.error) {
        this.nextFetch = fileEnd;
        continue;
      }
      const start = this.nextFetch;
      const partEnd = file.start + (Math.floor((start - file.start) / file.partSizeBytes) + 1) * file.partSizeBytes;
      const end = Math.min(start + this.chunkBytes, partEnd, fileEnd);
      if (this.heldBytes + (end - start) > this.readAheadBytes) break;
      const chunk: Chunk = { start, end, file, hashed: false };
      this.chunks.set(start, chunk);
      this.heldBytes += end - start;
      this.nextFetch = end;
      this.fetchesInFlight += 1;
      void this.fetch(chunk).finally(() => {
        this.fetchesInFlight -= 1;
        this.pump();
      });
    }
  }

  /** Never rejects: a failure fails the file. */
  private async fetch(chunk: Chunk): Promise<void> {
    const { file } = chunk;
    const from = chunk.start - file.start;
    const sizeBytes = chunk.end - chunk.start;
    try {
      const result = await this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: file.source.key,
          Range: `bytes=${from}-${from + sizeBytes - 1}`,
          ...(file.source.etag ? { IfMatch: file.source.etag } : {}),
        }),
        { abortSignal: this.abort.signal },
      );
      // Checked here too: not every S3-compatible server honours If-Match (s3rver ignores it).
      if (file.source.etag && result.ETag && result.ETag !== file.source.etag) throw new ObjectChangedError(file.source.key);
      const bytes = await result.Body!.transformToByteArray();
      if (bytes.length !== sizeBytes) {
        throw new Error(`${file.source.key}: read ${bytes.length} bytes at ${from}, expected ${sizeBytes} (did the object change?)`);
      }
      if (this.closed || file.error) return;
      chunk.bytes = bytes;
      this.hashInOrder(file);
      if (this.chunks.get(chunk.start) === chunk) this.onReadable?.();
    } catch (error) {
      if (this.closed) return;
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      this.failFile(file, status === 412 ? new ObjectChangedError(file.source.key) : error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Feeds fetched chunks to the file's part hashes in order (fetches finish out of order). */
  private hashInOrder(file: FileState): void {
    const size = file.source.size;
    for (;;) {
      const chunk = this.chunks.get(file.start + file.hashedBytes);
      if (!chunk?.bytes || chunk.hashed) return;
      file.hash ??= createHash('sha256');
      file.hash.update(chunk.bytes);
      file.hashedBytes += chunk.bytes.length;
      chunk.hashed = true;
      if (file.hashedBytes % file.partSizeBytes === 0 || file.hashedBytes === size) {
        file.digests.push(file.hash.digest());
        file.hash = undefined;
      }
      if (file.hashedBytes === size) file.checksum = compositeChecksum(file.digests);
      this.maybeFree(chunk);
    }
  }

  private maybeFree(chunk: Chunk): void {
    if (!chunk.hashed || !this.released.covers(chunk.start, chunk.end)) return;
    this.free(chunk);
  }

  private free(chunk: Chunk): void {
    if (this.chunks.get(chunk.start) !== chunk) return;
    this.chunks.delete(chunk.start);
    this.heldBytes -= chunk.end - chunk.start;
  }

  private failFile(file: FileState, error: Error): void {
    if (file.error) return;
    file.error = error;
    file.hash = undefined;
    for (const chunk of [...this.chunks.values()]) if (chunk.file === file) this.free(chunk);
    this.onFileError?.(file.source.index, error);
    this.pump();
  }
}

