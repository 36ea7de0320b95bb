import { Hono, type Context } from 'hono';
import {
  bucketPreferencesPatchSchema,
  bucketPreferencesSchema,
  type BucketPreferences,
  type BucketPreferencesPatch,
} from '../../contracts';
import { ServiceError } from '../../core/errors';
import { mergePreferences, type StoredPreferences } from '../../core/state/preferences';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { isXmlRequest, limitBody, parseXmlText, readJson, xmlEscape } from '../middleware/body';
import { assertQueryKeys, servedBucket } from '../request';

export const preferencesMaxBodyBytes = 16 * 1024;

export async function readPreferences(c: Context<AppEnv>, bucket: string): Promise<StoredPreferences> {
  requireScope(c.get('principal'), bucket, 'read');
  return c.get('deps').preferences.get(bucket);
}

/** `replace` takes a whole document; otherwise the fields given are merged into the stored ones. */
export async function writePreferences(
  c: Context<AppEnv>,
  bucket: string,
  change: { replace: BucketPreferences } | { patch: BucketPreferencesPatch },
): Promise<StoredPreferences> {
  requireScope(c.get('principal'), bucket, 'admin');
  const deps = c.get('deps');
  let next: BucketPreferences;
  if ('replace' in change) {
    next = change.replace;
  } else {
    const { preferences } = await deps.preferences.get(bucket);
    // A patch can break a rule across old and new fields (min above target): the merge re-validates.
    next = mergePreferences(preferences, change.patch);
  }
  return deps.preferences.put(bucket, next, deps.now());
}

function body(bucket: string, stored: StoredPreferences) {
  return { bucket, preferences: stored.preferences, updatedAt: stored.updatedAt };
}

const directionXml = (tag: string, d: BucketPreferences['upload']) =>
  `<${tag}><DefaultTransport>${d.defaultTransport}</DefaultTransport><TargetRateKbps>${d.targetRateKbps}</TargetRateKbps><MinRateKbps>${d.minRateKbps}</MinRateKbps></${tag}>`;

export function preferencesXml(bucket: string, stored: StoredPreferences): string {
  const p = stored.preferences;
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<TransferPreferences><Bucket>${xmlEscape(bucket)}</Bucket>${directionXml('Upload', p.upload)}${directionXml('Download', p.download)}` +
    `<RatePolicy>${p.ratePolicy}</RatePolicy><HttpFallback>${p.httpFallback}</HttpFallback></TransferPreferences>`
  );
}

const numberOrText = (value: unknown) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value);

function directionFromXml(value: unknown): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) return { invalid: value };
  const v = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const names: Record<string, string> = { DefaultTransport: 'defaultTransport', TargetRateKbps: 'targetRateKbps', MinRateKbps: 'minRateKbps' };
  for (const [k, val] of Object.entries(v)) out[names[k] ?? k] = numberOrText(val);
  return out;
}

/** `<TransferPreferences>` with any of Upload, Download, RatePolicy, HttpFallback: a partial update. */
export function patchFromXml(text: string): BucketPreferencesPatch {
  const doc = parseXmlText(text);
  const root = doc.TransferPreferences;
  if (typeof root !== 'object' || root === null || Object.keys(doc).some((k) => k !== 'TransferPreferences' && k !== '?xml')) {
    throw new ServiceError('MalformedXML', 'the root element must be <TransferPreferences>');
  }
  const r = root as Record<string, unknown>;
  const names: Record<string, string> = { Upload: 'upload', Download: 'download', RatePolicy: 'ratePolicy', HttpFallback: 'httpFallback' };
  const candidate: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (k === 'Bucket') continue;
    const name = names[k] ?? k;
    candidate[name] = name === 'upload' || name === 'download' ? directionFromXml(v) : v;
  }
  const parsed = bucketPreferencesPatchSchema.safeParse(candidate);
  if (!parsed.success) {
    throw new ServiceError('ValidationError', parsed.error.issues.map((i) => `${i.path.join('.') || 'TransferPreferences'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/** JSON routes: GET reads, PUT replaces, PATCH merges. */
export const preferencesRoutes = new Hono<AppEnv>()
  .use('/v1/buckets/:bucket/preferences', authenticate(['bearer', 'basic']), limitBody(preferencesMaxBodyBytes))
  .get('/v1/buckets/:bucket/preferences', async (c) => {
    assertQueryKeys(c, []);
    const bucket = servedBucket(c, c.req.param('bucket'));
    return c.json(body(bucket, await readPreferences(c, bucket)));
  })
  .put('/v1/buckets/:bucket/preferences', async (c) => {
    const bucket = servedBucket(c, c.req.param('bucket'));
    const replace = await readJson(c, bucketPreferencesSchema);
    return c.json(body(bucket, await writePreferences(c, bucket, { replace })));
  })
  .patch('/v1/buckets/:bucket/preferences', async (c) => {
    const bucket = servedBucket(c, c.req.param('bucket'));
    const patch = isXmlRequest(c) ? patchFromXml(await c.req.text()) : await readJson(c, bucketPreferencesPatchSchema);
    return c.json(body(bucket, await writePreferences(c, bucket, { patch })));
  });
