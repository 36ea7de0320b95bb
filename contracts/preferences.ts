import { z } from 'zod';

export const transportSchema = z.enum(['standard', 'high-speed']);
export const ratePolicySchema = z.enum(['fixed', 'high', 'fair', 'low']);
export const httpFallbackSchema = z.enum(['true', 'false', 'force']);
export type RatePolicy = z.infer<typeof ratePolicySchema>;
export type HttpFallbackMode = z.infer<typeof httpFallbackSchema>;

/** 100 Gbit/s: far above any link, low enough to catch a unit mistake (bits vs kilobits). */
export const maxRateKbps = 100_000_000;
const rateKbpsSchema = z.number().int().min(1).max(maxRateKbps);

export const directionPreferencesSchema = z
  .strictObject({
    defaultTransport: transportSchema,
    targetRateKbps: rateKbpsSchema,
    minRateKbps: z.number().int().min(0).max(maxRateKbps),
  })
  .refine((p) => p.minRateKbps <= p.targetRateKbps, {
    message: 'minRateKbps must not exceed targetRateKbps',
    path: ['minRateKbps'],
  });

export const bucketPreferencesSchema = z.strictObject({
  upload: directionPreferencesSchema,
  download: directionPreferencesSchema,
  ratePolicy: ratePolicySchema,
  httpFallback: httpFallbackSchema,
});
export type BucketPreferences = z.infer<typeof bucketPreferencesSchema>;

/** A partial update: only the fields given change. */
export const bucketPreferencesPatchSchema = z.strictObject({
  upload: z
    .strictObject({
      defaultTransport: transportSchema.optional(),
      targetRateKbps: rateKbpsSchema.optional(),
      minRateKbps: z.number().int().min(0).max(maxRateKbps).optional(),
    })
    .optional(),
  download: z
    .strictObject({
      defaultTransport: transportSchema.optional(),
      targetRateKbps: rateKbpsSchema.optional(),
      minRateKbps: z.number().int().min(0).max(maxRateKbps).optional(),
    })
    .optional(),
  ratePolicy: ratePolicySchema.optional(),
  httpFallback: httpFallbackSchema.optional(),
});
export type BucketPreferencesPatch = z.infer<typeof bucketPreferencesPatchSchema>;

export const defaultBucketPreferences: BucketPreferences = {
  upload: { defaultTransport: 'high-speed', targetRateKbps: 1_000_000, minRateKbps: 0 },
  download: { defaultTransport: 'high-speed', targetRateKbps: 1_000_000, minRateKbps: 0 },
  ratePolicy: 'fair',
  httpFallback: 'true',
};

/** Rate policies from least to most aggressive: a bucket's policy is the most aggressive one allowed. */
export const ratePolicyOrder: readonly RatePolicy[] = ['low', 'fair', 'high', 'fixed'];

export const bucketPreferencesResponseSchema = z.object({
  bucket: z.string(),
  preferences: bucketPreferencesSchema,
  updatedAt: z.string().nullable(),
});
