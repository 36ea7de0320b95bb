import { z } from 'zod';
import { bucketNameSchema } from './names';

export const actionSchema = z.enum(['read', 'write', 'admin']);
export type Action = z.infer<typeof actionSchema>;

/** `"*"` means every bucket the deployment serves. */
export const bucketScopeSchema = z.union([z.literal('*'), bucketNameSchema]);

export const createApiKeyRequestSchema = z.strictObject({
  name: z.string().min(1).max(128),
  buckets: z.array(bucketScopeSchema).min(1).max(100),
  actions: z.array(actionSchema).min(1).max(3),
  expiresInSeconds: z.number().int().min(60).max(10 * 365 * 86_400).optional(),
});
export type CreateApiKeyRequest = z.infer<typeof createApiKeyRequestSchema>;

export const apiKeySummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  buckets: z.array(z.string()),
  actions: z.array(actionSchema),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
export type ApiKeySummary = z.infer<typeof apiKeySummarySchema>;

export const createApiKeyResponseSchema = apiKeySummarySchema.extend({ secret: z.string() });
