import { z } from 'zod';
import { actionSchema } from './keys';
import { maxObjectKeyBytes, objectKeySchema } from './names';

// ── Browsing a bucket (the console): buckets, objects with prefixes as folders, download URLs ───────

/** `GET /v1/buckets`: the buckets the caller's key may use, with what it may do in each. */
export const bucketListSchema = z.object({
  buckets: z.array(z.object({ name: z.string(), actions: z.array(actionSchema) })),
});
export type BucketList = z.infer<typeof bucketListSchema>;

/** Objects per listing page at most: S3's own page limit. */
export const maxObjectsPerPage = 1000;

/** A listing prefix: any start of a key (a "folder" ends in `/`), no control characters. */
export const listPrefixSchema = z
  .string()
  .max(maxObjectKeyBytes)
  // eslint-disable-next-line no-control-regex
  .refine((p) => !/[\u0000-\u001f\u007f]/.test(p), { message: 'prefix must not contain control characters' })
  .refine((p) => new TextEncoder().encode(p).length <= maxObjectKeyBytes, { message: `prefix must be at most ${maxObjectKeyBytes} bytes of UTF-8` });

/** `GET /v1/buckets/{bucket}/objects?prefix=&delimiter=/&cursor=&limit=` */
export const objectListQuerySchema = z.strictObject({
  prefix: listPrefixSchema.default(''),
  /** `/` lists one folder level (deeper keys come back as `prefixes`); absent lists every key below the prefix. */
  delimiter: z.literal('/').optional(),
  cursor: z.string().min(1).max(2048).optional(),
  limit: z.coerce.number().int().min(1).max(maxObjectsPerPage).default(100),
});
export type ObjectListQuery = z.infer<typeof objectListQuerySchema>;

export const objectSummarySchema = z.object({
  key: z.string(),
  sizeBytes: z.number().int(),
  lastModified: z.string().nullable(),
  etag: z.string().nullable(),
});
export type ObjectSummary = z.infer<typeof objectSummarySchema>;

export const objectListSchema = z.object({
  bucket: z.string(),
  prefix: z.string(),
  objects: z.array(objectSummarySchema),
  /** With `delimiter=/`: the "folders" directly below `prefix`, each ending in `/`. */
  prefixes: z.array(z.string()),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: z.string().nullable(),
});
export type ObjectList = z.infer<typeof objectListSchema>;

/** Keys per download-urls call. */
export const maxDownloadKeysPerCall = 100;

/** `POST /v1/buckets/{bucket}/download-urls` */
export const objectDownloadUrlsRequestSchema = z.strictObject({
  keys: z.array(objectKeySchema).min(1).max(maxDownloadKeysPerCall),
  /** `attachment` makes a browser save the object under its name instead of showing it. */
  disposition: z.enum(['attachment', 'inline']).default('inline'),
});
export type ObjectDownloadUrlsRequest = z.infer<typeof objectDownloadUrlsRequestSchema>;

export const objectDownloadUrlsSchema = z.object({
  files: z.array(
    z.object({
      key: z.string(),
      /** Presigned GetObject; `Range` works on it. */
      url: z.string(),
      sizeBytes: z.number().int(),
      etag: z.string().nullable(),
      lastModified: z.string().nullable(),
    }),
  ),
  expiresAt: z.string(),
});
export type ObjectDownloadUrls = z.infer<typeof objectDownloadUrlsSchema>;
