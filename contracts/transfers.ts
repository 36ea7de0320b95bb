import { z } from 'zod';

export const transferStatusSchema = z.enum(['QUEUED', 'RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELED']);
export type TransferStatus = z.infer<typeof transferStatusSchema>;
export const activeStatuses: readonly TransferStatus[] = ['QUEUED', 'RUNNING', 'PAUSED'];

/** Kept per transfer, the newest last: enough to tell a flapping link, bounded so the record stays small. */
export const maxTransportChanges = 20;

/** A switch between the engine's UDP transport and HTTPS (HTTP fallback), as the client reported it. */
export const transportChangeSchema = z.object({
  transport: z.enum(['udp', 'http']),
  at: z.string(),
  reason: z.string(),
});
export type TransportChange = z.infer<typeof transportChangeSchema>;

export const transferSchema = z.object({
  id: z.string(),
  bucket: z.string(),
  direction: z.enum(['upload', 'download']),
  transport: z.enum(['high-speed', 'http']),
  status: transferStatusSchema,
  keyPrefix: z.string(),
  /** The object key, for single-object (fallback multipart) transfers. */
  key: z.string().optional(),
  files: z.number().int(),
  bytesTotal: z.number().int().nullable(),
  bytesTransferred: z.number().int(),
  rateKbps: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  endedAt: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  transportChanges: z.array(transportChangeSchema).max(maxTransportChanges).default([]),
});
export type Transfer = z.infer<typeof transferSchema>;

export const transferListQuerySchema = z.strictObject({
  state: z.enum(['active', 'completed', 'all']).default('all'),
  bucket: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(2048).optional(),
});

export const transferListSchema = z.object({ transfers: z.array(transferSchema), nextCursor: z.string().nullable() });
