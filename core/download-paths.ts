import { HeadObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { FileEntry } from '../protocol/transfer';

/** What a download names, resolved against the bucket: shared by the engine and the HTTPS fallback routes. */

/** A manifest entry with the object it comes from. */
export type ResolvedFile = FileEntry & { key: string; etag?: string };

export class TooManyFilesError extends Error {
  override name = 'TooManyFilesError';
  readonly code = 'TooManyFiles';
}

export class NoSuchPathError extends Error {
  override name = 'NoSuchPathError';
  readonly code = 'NotFound';
}

const maxKeysPerPage = 1000;

/**
 * Expands download paths below `keyPrefix`: an exact object is one file; a path ending in `/`, or one
 * with no exact object, is every object under `<path>/` (folder markers left out). Paths are returned
 * relative to keyPrefix, in order, each key once. More than maxFiles (default 100,000) is an error.
 * keysPerPage (default and S3's maximum 1000) is the listing page size.
 */
export async function resolveDownloadPaths(
  s3: S3Client,
  bucket: string,
  keyPrefix: string,
  paths: readonly string[],
  options: { maxFiles?: number; keysPerPage?: number } = {},
): Promise<ResolvedFile[]> {
  const maxFiles = options.maxFiles ?? 100_000;
  const keysPerPage = options.keysPerPage ?? maxKeysPerPage;
  const files: ResolvedFile[] = [];
  const seen = new Set<string>();
  const add = (key: string, size: number, etag: string | undefined) => {
    if (seen.has(key)) return;
    if (files.length >= maxFiles) {
      throw new TooManyFilesError(`the download names more than ${maxFiles} files; ask for fewer paths or a narrower prefix`);
    }
    seen.add(key);
    files.push({ index: files.length, path: key.slice(keyPrefix.length), key, size, ...(etag ? { etag } : {}) });
  };
  for (const path of paths) {
    const key = keyPrefix + path;
    if (!key.endsWith('/')) {
      const head = await headObject(s3, bucket, key);
      if (head) {
        add(key, head.size, head.etag);
        continue;
      }
    }
    const prefix = key.endsWith('/') ? key : `${key}/`;
    let found = 0;
    let marker: string | undefined;
    // ListObjects (v1) with Marker, not v2: s3rver builds v2 continuation tokens with DES, which
    // OpenSSL 3 refuses, so every truncated v2 page is a 500 there. v1 paging works on AWS, RGW and s3rver.
    do {
      const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker, MaxKeys: keysPerPage }));
      const contents = page.Contents ?? [];
      for (const object of contents) {
        if (!object.Key || object.Key.endsWith('/')) continue;
        add(object.Key, object.Size ?? 0, object.ETag);
        found += 1;
      }
      marker = page.IsTruncated ? (page.NextMarker ?? contents[contents.length - 1]?.Key) : undefined;
    } while (marker);
    if (found === 0) throw new NoSuchPathError(`nothing to download at ${path}: no object ${key} and no objects under ${prefix}`);
  }
  return files;
}

async function headObject(s3: S3Client, bucket: string, key: string): Promise<{ size: number; etag?: string } | undefined> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: head.ContentLength ?? 0, ...(head.ETag ? { etag: head.ETag } : {}) };
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (error as { name?: string }).name === 'NotFound') return undefined;
    throw error;
  }
}
