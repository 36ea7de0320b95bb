import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * The file layer above the connection: a transfer's files travel back to back in one logical data
 * stream (manifest order), so many small files share packets; control messages describe them.
 */
export const MiB = 1024 * 1024;
export const maxPartCount = 10_000;
/** Files at or below this size are stored with one PutObject instead of a multipart upload. */
export const singlePutMaxBytes = 8 * MiB;
/** Manifest entries per control message, so no message grows without bound. */
export const maxFilesPerManifestMessage = 500;

/** part size = max(8 MiB, ceil(size ÷ 10,000)) rounded up to whole MiB: ≤ 10,000 parts for any S3 object. */
export function partSizeFor(sizeBytes: number): number {
  return Math.max(8 * MiB, Math.ceil(Math.ceil(sizeBytes / maxPartCount) / MiB) * MiB);
}

export function partCountFor(sizeBytes: number): number {
  return Math.max(1, Math.ceil(sizeBytes / partSizeFor(sizeBytes)));
}

/**
 * A file's whole-file checksum: SHA-256 over the SHA-256 digests of its parts (part size from
 * `partSizeFor`). Computable part by part in any order and after a resume, without re-reading what an
 * earlier session already stored. Hex.
 */
export function compositeChecksum(partDigests: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const digest of partDigests) hash.update(digest);
  return hash.digest('hex');
}

export function partDigest(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}

/** Checksum of a whole in-memory buffer, the way the composite defines it. */
export function checksumOf(bytes: Uint8Array): string {
  const size = partSizeFor(bytes.length);
  const digests: Uint8Array[] = [];
  for (let start = 0; start < bytes.length || digests.length === 0; start += size) {
    digests.push(partDigest(bytes.subarray(start, Math.min(start + size, bytes.length))));
  }
  return compositeChecksum(digests);
}

export const fileEntrySchema = z.object({
  /** Index in the transfer, from 0, in stream order. */
  index: z.number().int().min(0),
  /** Relative path: the key below the token's prefix (upload) or the local path below the target (download). */
  path: z.string().min(1).max(1024),
  size: z.number().int().min(0),
});
export type FileEntry = z.infer<typeof fileEntrySchema>;

const rangeSchema = z.tuple([z.number().int().min(0), z.number().int().min(0)]);

/** Control messages, JSON on the reliable control stream. `from` says which side sends each. */
export const controlMessageSchema = z.discriminatedUnion('t', [
  /** data sender → receiver: the next files (in index order); `final` on the last batch. */
  z.object({ t: z.literal('files'), files: z.array(fileEntrySchema).max(maxFilesPerManifestMessage), final: z.boolean() }),
  /** client → server (download): the object keys or prefixes to send, below the token's prefix. */
  z.object({ t: z.literal('get'), paths: z.array(z.string().min(1).max(1024)).min(1).max(maxFilesPerManifestMessage), final: z.boolean() }),
  /** data receiver → sender: stream ranges it already holds durably (resume); sent once, after the manifest. */
  z.object({ t: z.literal('have'), ranges: z.array(rangeSchema).max(100_000) }),
  /** data sender → receiver: a file's whole-file checksum (see compositeChecksum). */
  z.object({ t: z.literal('sum'), index: z.number().int().min(0), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
  /** receiver → sender: the file is stored whole and verified (upload: the object exists now). */
  z.object({ t: z.literal('done'), index: z.number().int().min(0) }),
  /** either side: a file failed; the transfer goes on with the others. */
  z.object({ t: z.literal('file-error'), index: z.number().int().min(0), code: z.string(), message: z.string() }),
  /** either side: stop or restart sending data (the receiver pauses a download from the client). */
  z.object({ t: z.literal('pause') }),
  z.object({ t: z.literal('resume') }),
]);
export type ControlMessage = z.infer<typeof controlMessageSchema>;

export function encodeControl(message: ControlMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message));
}

/** undefined for a message that is not valid JSON or not one of ours: the caller closes the session. */
export function decodeControl(bytes: Uint8Array): ControlMessage | undefined {
  try {
    const parsed = controlMessageSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Where each file sits in the data stream. Files are appended in index order as the manifest arrives. */
export class StreamLayout {
  private readonly starts: number[] = [];
  private readonly entries: FileEntry[] = [];
  private end = 0;

  get files(): readonly FileEntry[] {
    return this.entries;
  }

  get totalBytes(): number {
    return this.end;
  }

  add(file: FileEntry): void {
    if (file.index !== this.entries.length) throw new Error(`file ${file.index} out of order (expected ${this.entries.length})`);
    this.entries.push(file);
    this.starts.push(this.end);
    this.end += file.size;
  }

  start(index: number): number {
    const start = this.starts[index];
    if (start === undefined) throw new Error(`no file ${index}`);
    return start;
  }

  /** The file holding stream offset `offset` (for a zero-size file, never). Binary search. */
  fileAt(offset: number): number | undefined {
    let lo = 0;
    let hi = this.entries.length - 1;
    let found: number | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= offset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found === undefined) return undefined;
    // Skip zero-size files that share a start with the file that really holds the byte.
    while (found < this.entries.length && this.entries[found]!.size === 0) found += 1;
    return found < this.entries.length && offset < this.starts[found]! + this.entries[found]!.size ? found : undefined;
  }
}
