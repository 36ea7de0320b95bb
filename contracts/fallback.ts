import { z } from 'zod';
import { bucketNameSchema, objectKeySchema } from './names';

export const MiB = 1024 * 1024;
export const minPartSizeBytes = 5 * MiB;
export const maxPartSizeBytes = 5 * 1024 * MiB;
export const maxPartCount = 10_000;
export const maxObjectSizeBytes = 5 * 1024 * 1024 * MiB;
export const maxSignBatch = 100;

export const createFallbackUploadSchema = z.strictObject({
  bucket: bucketNameSchema,
  key: objectKeySchema,
  sizeBytes: z.number().int().min(0).max(maxObjectSizeBytes),
  partSizeBytes: z.number().int().min(1).max(maxPartSizeBytes).optional(),
  contentType: z.string().min(1).max(256).optional(),
});
export type CreateFallbackUpload = z.infer<typeof createFallbackUploadSchema>;

export const signPartsSchema = z.strictObject({
  partNumbers: z.array(z.number().int().min(1).max(maxPartCount)).min(1).max(maxSignBatch),
});

export const completedPartSchema = z.strictObject({
  partNumber: z.number().int().min(1).max(maxPartCount),
  etag: z.string().min(1).max(1024),
});

export const completeFallbackUploadSchema = z.strictObject({
  parts: z.array(completedPartSchema).max(maxPartCount).optional(),
});

export const uploadedPartSchema = z.object({ partNumber: z.number().int(), etag: z.string(), sizeBytes: z.number().int() });
export type UploadedPart = z.infer<typeof uploadedPartSchema>;

// ── Continuing a transfer over HTTPS (README "When UDP is blocked") ─────────────────────────────────
// The routes under /v1/transfers/{id}/… continue a transfer from upload_setup/download_setup whose UDP
// session was blocked or went silent: the same S3 multipart upload per file, the same part layout as the
// engine (protocol/transfer.ts partSizeFor), the same whole-file checksum before the object is completed.

/** Object metadata with an object's whole-file checksum, written by the engine and by the HTTPS path alike. */
export const checksumMetadataKey = 'slipstream-sha256';

const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (SHA-256)');
/** Base64 of a 16-byte MD5 digest: what S3 expects in Content-MD5. */
const md5Base64Schema = z.string().regex(/^[A-Za-z0-9+/]{22}==$/, 'must be the base64 of a 16-byte MD5 digest');
/** Files a transfer may hold; the engine's bound on a manifest. */
export const maxFilesPerTransfer = 100_000;
/** Paths per downloads call, and files one call may expand to. */
export const maxDownloadPathsPerCall = 100;
export const maxDownloadFilesPerCall = 1000;

/** `POST /v1/transfers/{id}/transport` */
export const transportChangeRequestSchema = z.strictObject({
  transport: z.enum(['http', 'udp']),
  reason: z.string().min(1).max(200),
});
export type TransportChangeRequest = z.infer<typeof transportChangeRequestSchema>;

/** `POST /v1/transfers/{id}/files/{index}/upload`: `path` is below the transfer's key prefix. */
export const fileUploadRequestSchema = z.strictObject({
  path: objectKeySchema,
  sizeBytes: z.number().int().min(0).max(maxObjectSizeBytes),
  /** The whole-file checksum: SHA-256 over the parts' SHA-256 digests (protocol/transfer.ts compositeChecksum). */
  sha256: sha256HexSchema,
});
export type FileUploadRequest = z.infer<typeof fileUploadRequestSchema>;

export const recordedPartSchema = z.object({
  partNumber: z.number().int(),
  sizeBytes: z.number().int(),
  sha256: z.string(),
  etag: z.string(),
  /** How the part reached S3: the engine (`udp`) or a presigned URL (`http`). */
  transport: z.enum(['udp', 'http']),
});
export type RecordedPart = z.infer<typeof recordedPartSchema>;

export const fileUploadStateSchema = z.object({
  fileIndex: z.number().int(),
  key: z.string(),
  status: z.enum(['open', 'committed']),
  /** null for a 0-byte file: it has no multipart upload (complete stores it). */
  uploadId: z.string().nullable(),
  partSizeBytes: z.number().int(),
  partCount: z.number().int(),
  /** Parts of this upload already durable: never send them again. */
  parts: z.array(recordedPartSchema),
});
export type FileUploadState = z.infer<typeof fileUploadStateSchema>;

/** `POST /v1/transfers/{id}/files/{index}/parts` */
export const signFilePartsRequestSchema = z.strictObject({
  parts: z
    .array(z.strictObject({ partNumber: z.number().int().min(1).max(maxPartCount), md5: md5Base64Schema }))
    .min(1)
    .max(maxSignBatch),
});
export type SignFilePartsRequest = z.infer<typeof signFilePartsRequestSchema>;

export const signedFilePartsSchema = z.object({
  parts: z.array(
    z.object({
      partNumber: z.number().int(),
      url: z.string(),
      sizeBytes: z.number().int(),
      /** Send exactly these with the PUT: they are signed into the URL. */
      headers: z.object({ 'content-md5': z.string() }),
    }),
  ),
  expiresAt: z.string(),
});
export type SignedFileParts = z.infer<typeof signedFilePartsSchema>;

/** `POST /v1/transfers/{id}/files/{index}/parts/{partNumber}`: a part the client PUT. */
export const recordFilePartRequestSchema = z.strictObject({
  etag: z.string().min(1).max(1024),
  sha256: sha256HexSchema,
});
export type RecordFilePartRequest = z.infer<typeof recordFilePartRequestSchema>;

/** `POST /v1/transfers/{id}/files/{index}/complete` */
export const completeFileRequestSchema = z.strictObject({ sha256: sha256HexSchema });
export type CompleteFileRequest = z.infer<typeof completeFileRequestSchema>;

export const completedFileSchema = z.object({
  fileIndex: z.number().int(),
  key: z.string(),
  checksum: z.string(),
  etag: z.string().nullable(),
});
export type CompletedFile = z.infer<typeof completedFileSchema>;

/** `POST /v1/transfers/{id}/finish` */
export const finishTransferRequestSchema = z.strictObject({
  files: z.number().int().min(0).max(maxFilesPerTransfer),
});
export type FinishTransferRequest = z.infer<typeof finishTransferRequestSchema>;

/** `POST /v1/transfers/{id}/downloads`: objects, or prefixes ending in `/`, below the transfer's key prefix. */
export const downloadUrlsRequestSchema = z.strictObject({
  paths: z.array(z.string().min(1).max(1024)).min(1).max(maxDownloadPathsPerCall),
});
export type DownloadUrlsRequest = z.infer<typeof downloadUrlsRequestSchema>;

export const downloadUrlsSchema = z.object({
  files: z.array(
    z.object({
      /** Relative to the transfer's key prefix (the local path below the target). */
      path: z.string(),
      key: z.string(),
      /** Presigned GetObject: send `Range` for part of the object, `If-Match: <etag>` to refuse a changed one. */
      url: z.string(),
      sizeBytes: z.number().int(),
      etag: z.string().nullable(),
      /** The whole-file checksum the object was stored with (metadata `slipstream-sha256`), if any. */
      sha256: z.string().nullable(),
    }),
  ),
  expiresAt: z.string(),
});
export type DownloadUrls = z.infer<typeof downloadUrlsSchema>;
