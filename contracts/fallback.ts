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
