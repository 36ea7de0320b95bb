import { z } from 'zod';
import { bucketNameSchema } from '../contracts';

const portSchema = z.coerce.number().int().min(1).max(65_535);
const urlSchema = z.url({ protocol: /^https?$/ });

/** Everything the API and the engine read from their environment, validated once at start. */
export const configSchema = z.object({
  tableName: z.string().min(3).max(255),
  region: z.string().min(1),
  /** `*` serves any bucket the credentials reach (the local stack); in AWS an explicit list from cdk.json. */
  buckets: z.union([z.literal('*'), z.array(bucketNameSchema).min(1)]),
  s3Endpoint: urlSchema.optional(),
  /** Where clients reach S3 for presigned URLs, if not where the API reaches it. */
  s3PublicEndpoint: urlSchema.optional(),
  s3ForcePathStyle: z.boolean(),
  dynamoDbEndpoint: urlSchema.optional(),
  /**
   * Fixed public API base URL, with a path when the API is mounted under one behind a reverse proxy
   * (`https://files.example.com/slipstream`); when unset, each request's origin (right behind API Gateway).
   */
  publicUrl: urlSchema
    .refine((url) => !/[?#]/.test(url), { message: 'must have no query or fragment' })
    .optional(),
  /**
   * Take the public base URL from the reverse proxy's X-Forwarded-Proto/-Host/-Port/-Prefix headers
   * (where present, over publicUrl). Only behind a proxy that sets them: any client can send them, and
   * an untrusted value would put its URLs into the specs and connection info this API hands out.
   */
  trustProxy: z.boolean().optional(),
  engineHost: z.string().min(1),
  enginePort: portSchema,
  accessKeyTtlSeconds: z.number().int().min(60).max(12 * 3600),
  tokenTtlSeconds: z.number().int().min(60).max(7 * 86_400),
  /** Only the parts that seal or open tokens have keys (least privilege); the others never read them. */
  tokenKeys: z
    .discriminatedUnion('source', [
      z.object({ source: z.literal('inline'), json: z.string().min(1) }),
      z.object({ source: z.literal('secrets-manager'), secretArn: z.string().min(1) }),
    ])
    .optional(),
  credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
});
export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads `SLIPSTREAM_*` variables; the error names each bad variable. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Config {
  const bucketsText = env.SLIPSTREAM_BUCKETS ?? '*';
  const raw = {
    tableName: env.SLIPSTREAM_TABLE_NAME ?? 'slipstream',
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    buckets: bucketsText.trim() === '*' ? '*' : bucketsText.split(',').map((b) => b.trim()).filter(Boolean),
    s3Endpoint: env.SLIPSTREAM_S3_ENDPOINT || undefined,
    s3PublicEndpoint: env.SLIPSTREAM_S3_PUBLIC_ENDPOINT || undefined,
    s3ForcePathStyle: env.SLIPSTREAM_S3_FORCE_PATH_STYLE === 'true' || Boolean(env.SLIPSTREAM_S3_ENDPOINT),
    dynamoDbEndpoint: env.SLIPSTREAM_DYNAMODB_ENDPOINT || undefined,
    publicUrl: env.SLIPSTREAM_PUBLIC_URL || undefined,
    trustProxy: ['1', 'true'].includes(env.SLIPSTREAM_TRUST_PROXY ?? ''),
    engineHost: env.SLIPSTREAM_ENGINE_HOST ?? '127.0.0.1',
    enginePort: env.SLIPSTREAM_ENGINE_PORT ?? 33_001,
    accessKeyTtlSeconds: Number(env.SLIPSTREAM_ACCESS_KEY_TTL_SECONDS ?? 3600),
    tokenTtlSeconds: Number(env.SLIPSTREAM_TOKEN_TTL_SECONDS ?? 86_400),
    tokenKeys: env.SLIPSTREAM_TOKEN_SECRET_ARN
      ? { source: 'secrets-manager', secretArn: env.SLIPSTREAM_TOKEN_SECRET_ARN }
      : env.SLIPSTREAM_TOKEN_KEYS
        ? { source: 'inline', json: env.SLIPSTREAM_TOKEN_KEYS }
        : undefined,
    credentials:
      env.SLIPSTREAM_S3_ACCESS_KEY_ID && env.SLIPSTREAM_S3_SECRET_ACCESS_KEY
        ? { accessKeyId: env.SLIPSTREAM_S3_ACCESS_KEY_ID, secretAccessKey: env.SLIPSTREAM_S3_SECRET_ACCESS_KEY }
        : undefined,
  };
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid Slipstream configuration: ${problems}`);
  }
  return parsed.data;
}

/** The environment that `configFromEnv` reads back into `config`: how a parent hands a child process its configuration. */
export function configToEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {
    SLIPSTREAM_TABLE_NAME: config.tableName,
    AWS_REGION: config.region,
    SLIPSTREAM_BUCKETS: config.buckets === '*' ? '*' : config.buckets.join(','),
    SLIPSTREAM_S3_FORCE_PATH_STYLE: String(config.s3ForcePathStyle),
    SLIPSTREAM_ENGINE_HOST: config.engineHost,
    SLIPSTREAM_ENGINE_PORT: String(config.enginePort),
    SLIPSTREAM_ACCESS_KEY_TTL_SECONDS: String(config.accessKeyTtlSeconds),
    SLIPSTREAM_TOKEN_TTL_SECONDS: String(config.tokenTtlSeconds),
  };
  if (config.s3Endpoint) env.SLIPSTREAM_S3_ENDPOINT = config.s3Endpoint;
  if (config.s3PublicEndpoint) env.SLIPSTREAM_S3_PUBLIC_ENDPOINT = config.s3PublicEndpoint;
  if (config.dynamoDbEndpoint) env.SLIPSTREAM_DYNAMODB_ENDPOINT = config.dynamoDbEndpoint;
  if (config.publicUrl) env.SLIPSTREAM_PUBLIC_URL = config.publicUrl;
  if (config.trustProxy) env.SLIPSTREAM_TRUST_PROXY = '1';
  if (config.tokenKeys?.source === 'inline') env.SLIPSTREAM_TOKEN_KEYS = config.tokenKeys.json;
  if (config.tokenKeys?.source === 'secrets-manager') env.SLIPSTREAM_TOKEN_SECRET_ARN = config.tokenKeys.secretArn;
  if (config.credentials) {
    env.SLIPSTREAM_S3_ACCESS_KEY_ID = config.credentials.accessKeyId;
    env.SLIPSTREAM_S3_SECRET_ACCESS_KEY = config.credentials.secretAccessKey;
  }
  return env;
}

export function servesBucket(config: Pick<Config, 'buckets'>, bucket: string): boolean {
  return config.buckets === '*' || config.buckets.includes(bucket);
}
