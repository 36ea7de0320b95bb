import { z } from 'zod';
import { bucketNameSchema } from './names';
import { httpFallbackSchema, maxRateKbps, ratePolicySchema } from './preferences';

export const protocolVersion = 1;
export const maxPathsPerRequest = 10_000;
export const maxTransferRequests = 100;

const pathSchema = z.string().min(1).max(4096);

export const transferPathSchema = z.strictObject({
  source: pathSchema,
  destination: pathSchema.optional(),
  /** Bytes, when the client knows them (uploads); lets the engine plan parts before the first block. */
  size: z.number().int().min(0).optional(),
});

const rateKbpsSchema = z.number().int().min(0).max(maxRateKbps);

/** Aspera accepts booleans and the strings "true"/"false"/"force" for http_fallback. */
const httpFallbackInputSchema = z
  .union([z.boolean(), httpFallbackSchema])
  .transform((v) => (typeof v === 'boolean' ? (String(v) as 'true' | 'false') : v));

export const resumePolicySchema = z.enum(['none', 'attrs', 'sparse_csum', 'full_csum']);
export const overwriteSchema = z.enum(['always', 'never', 'diff', 'older']);

/** Our additions to an Aspera transfer request live under this one key. */
export const requestExtensionSchema = z.strictObject({
  bucket: bucketNameSchema.optional(),
});

export const transferRequestSchema = z.strictObject({
  paths: z.array(transferPathSchema).min(1).max(maxPathsPerRequest),
  source_root: z.string().max(1024).optional(),
  destination_root: z.string().max(1024).optional(),
  target_rate_kbps: rateKbpsSchema.optional(),
  min_rate_kbps: rateKbpsSchema.optional(),
  rate_policy: ratePolicySchema.optional(),
  http_fallback: httpFallbackInputSchema.optional(),
  cipher: z.enum(['aes-256-gcm', 'aes-128-gcm']).optional(),
  resume_policy: resumePolicySchema.optional(),
  overwrite: overwriteSchema.optional(),
  cookie: z.string().max(4096).optional(),
  tags: z.record(z.string(), z.unknown()).optional(),
  slipstream: requestExtensionSchema.optional(),
});
export type TransferRequest = z.infer<typeof transferRequestSchema>;

export const setupRequestSchema = z.strictObject({
  transfer_requests: z
    .array(z.strictObject({ transfer_request: transferRequestSchema }))
    .min(1)
    .max(maxTransferRequests),
});
export type SetupRequest = z.infer<typeof setupRequestSchema>;

export const directionSchema = z.enum(['send', 'receive']);
export type Direction = z.infer<typeof directionSchema>;

export const specExtensionSchema = z.object({
  transfer_id: z.string(),
  bucket: z.string(),
  key_prefix: z.string(),
  session_secret: z.string(),
  token_expires_at: z.string(),
  protocol_version: z.number().int(),
  api_url: z.string(),
  fallback_url: z.string(),
  default_transport: z.enum(['standard', 'high-speed']),
});

export const transferSpecSchema = z.object({
  direction: directionSchema,
  remote_host: z.string(),
  fasp_port: z.number().int(),
  token: z.string(),
  paths: z.array(z.object({ source: z.string(), destination: z.string().optional(), size: z.number().optional() })),
  source_root: z.string().optional(),
  destination_root: z.string(),
  target_rate_kbps: z.number().int(),
  min_rate_kbps: z.number().int(),
  target_rate_cap_kbps: z.number().int(),
  rate_policy: ratePolicySchema,
  rate_policy_allowed: ratePolicySchema,
  cipher: z.string(),
  http_fallback: httpFallbackSchema,
  http_fallback_port: z.number().int(),
  https_fallback_port: z.number().int(),
  resume_policy: resumePolicySchema,
  overwrite: overwriteSchema,
  cookie: z.string().optional(),
  tags: z.record(z.string(), z.unknown()).optional(),
  slipstream: specExtensionSchema,
});
export type TransferSpec = z.infer<typeof transferSpecSchema>;

export const setupErrorSchema = z.object({ code: z.number().int(), reason: z.string(), user_message: z.string() });

export const setupResponseSchema = z.object({
  transfer_specs: z.array(
    z.union([z.object({ transfer_spec: transferSpecSchema }), z.object({ error: setupErrorSchema })]),
  ),
});
export type SetupResponse = z.infer<typeof setupResponseSchema>;

/** The JSON flavour of `GET /{bucket}?faspConnectionInfo`. */
export const connectionInfoSchema = z.object({
  accessKey: z.object({ id: z.string(), secret: z.string(), expiresAt: z.string() }),
  atsEndpoint: z.string(),
  bucket: z.string(),
  engine: z.object({ host: z.string(), port: z.number().int() }),
  fallbackUrl: z.string(),
  protocolVersion: z.number().int(),
});
export type ConnectionInfo = z.infer<typeof connectionInfoSchema>;
