import { z } from 'zod';
import { bucketNameProblem } from '../../contracts/names';

/**
 * Deployment settings, read from CDK context (`cdk.json` or `-c key=value`) and validated here, so a bad
 * value stops `cdk synth` with a message that names the field instead of failing half-way through a deploy.
 */

/** CloudWatch Logs accepts only these retention periods. */
const logRetentionDays = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

/** Fargate task sizes: for each CPU value, the memory range (MiB) and step it accepts. */
const fargateMemoryMiB: Record<number, { min: number; max: number; step: number }> = {
  256: { min: 512, max: 2048, step: 512 },
  512: { min: 1024, max: 4096, step: 1024 },
  1024: { min: 2048, max: 8192, step: 1024 },
  2048: { min: 4096, max: 16384, step: 1024 },
  4096: { min: 8192, max: 30720, step: 1024 },
  8192: { min: 16384, max: 61440, step: 4096 },
  16384: { min: 32768, max: 122880, step: 8192 },
};

const bucketName = z.string().superRefine((name, ctx) => {
  const problem = bucketNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: `"${name}": bucket name ${problem}` });
});

/** An origin as browsers send it: `https://host[:port]`, nothing after the authority. */
const httpsOrigin = z.string().superRefine((value, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== 'https:' || url.origin !== value) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not an https origin like https://console.example.com (no path, no trailing slash)` });
  }
});

const port = z.coerce.number().int().min(1).max(65_535);

export const slipstreamConfigSchema = z
  .object({
    /** The S3 buckets the service serves. They must already exist; the stack adds CORS and a lifecycle rule to each. */
    buckets: z
      .array(bucketName)
      .min(1, 'list at least one S3 bucket the service serves')
      .refine((names) => new Set(names).size === names.length, 'list each bucket once'),
    /** Browser origins (besides the stack's own CloudFront console) allowed to call the API and S3 directly. */
    consoleOrigins: z.array(httpsOrigin).default([]),
    abortIncompleteMultipartAfterDays: z.coerce.number().int().min(1).max(30).default(3),
    enginePort: port.default(33_001),
    engineHealthPort: port.default(8081),
    engineDesiredCount: z.coerce.number().int().min(1).max(50).default(2),
    engineCpu: z.coerce
      .number()
      .int()
      .refine((cpu) => cpu in fargateMemoryMiB, `must be a Fargate CPU value: ${Object.keys(fargateMemoryMiB).join(', ')}`)
      .default(1024),
    engineMemoryMiB: z.coerce.number().int().default(2048),
    engineCpuArchitecture: z.enum(['x86_64', 'arm64']).default('x86_64'),
    /** Lifetime of the access keys `?faspConnectionInfo` hands out (core reads SLIPSTREAM_ACCESS_KEY_TTL_SECONDS). */
    accessKeyTtlSeconds: z.coerce.number().int().min(60).max(12 * 3600).default(3600),
    /** Lifetime of sealed transfer tokens (core reads SLIPSTREAM_TOKEN_TTL_SECONDS). */
    tokenTtlSeconds: z.coerce.number().int().min(60).max(7 * 86_400).default(86_400),
    logRetentionDays: z.coerce
      .number()
      .int()
      .refine((d) => (logRetentionDays as readonly number[]).includes(d), `must be one of ${logRetentionDays.join(', ')}`)
      .default(90),
    apiThrottleRateLimit: z.coerce.number().int().min(1).max(10_000).default(100),
    apiThrottleBurstLimit: z.coerce.number().int().min(1).max(5_000).default(200),
  })
  .superRefine((c, ctx) => {
    if (c.enginePort === c.engineHealthPort) {
      ctx.addIssue({ code: 'custom', path: ['engineHealthPort'], message: 'must differ from enginePort' });
    }
    const memory = fargateMemoryMiB[c.engineCpu];
    if (memory && (c.engineMemoryMiB < memory.min || c.engineMemoryMiB > memory.max || c.engineMemoryMiB % memory.step !== 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['engineMemoryMiB'],
        message: `with engineCpu ${c.engineCpu}, must be ${memory.min}..${memory.max} in steps of ${memory.step}`,
      });
    }
  });

export type SlipstreamConfig = z.infer<typeof slipstreamConfigSchema>;
export type SlipstreamConfigInput = z.input<typeof slipstreamConfigSchema>;
export const configKeys = Object.keys(slipstreamConfigSchema.shape) as (keyof SlipstreamConfig)[];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * `-c buckets='["a","b"]'` and `-c buckets=a,b` both arrive as strings; cdk.json values arrive as JSON.
 * Lists accept either form; everything else is coerced by the schema.
 */
function fromContextValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string' || (key !== 'buckets' && key !== 'consoleOrigins')) return value;
  const text = value.trim();
  if (text.startsWith('[')) {
    try {
      return JSON.parse(text);
    } catch {
      return value; // the schema reports it as not a list
    }
  }
  return text === '' ? [] : text.split(',').map((s) => s.trim());
}

/** Validates the raw settings (e.g. from CDK context); the error names every bad field. */
export function parseConfig(raw: Record<string, unknown>): SlipstreamConfig {
  const input: Record<string, unknown> = {};
  for (const key of configKeys) {
    if (raw[key] !== undefined) input[key] = fromContextValue(key, raw[key]);
  }
  const parsed = slipstreamConfigSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const [field, ...rest] = issue.path;
      const where = field === undefined ? '(config)' : `${String(field)}${rest.map((p) => `[${String(p)}]`).join('')}`;
      return `${where}: ${issue.message}`;
    });
    throw new ConfigError(`invalid Slipstream CDK config (cdk.json "context" or -c key=value):\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}

/** Reads each config key from a construct's context (the App's, which includes cdk.json and `-c`). */
export function configFromContext(tryGetContext: (key: string) => unknown): SlipstreamConfig {
  return parseConfig(Object.fromEntries(configKeys.map((key) => [key, tryGetContext(key)])));
}
