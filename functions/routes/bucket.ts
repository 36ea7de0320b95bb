import { Hono, type Context } from 'hono';
import { protocolVersion, type Action, type ConnectionInfo } from '../../contracts';
import { ServiceError } from '../../core/errors';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { isXmlRequest, limitBody, readJson, xmlEscape } from '../middleware/body';
import { bucketPreferencesPatchSchema } from '../../contracts';
import { assertQueryKeys, publicBaseUrl, servedBucket } from '../request';
import { patchFromXml, preferencesMaxBodyBytes, preferencesXml, readPreferences, writePreferences } from './preferences';

const subresources = ['faspConnectionInfo', 'transferPreferences'] as const;
type Subresource = (typeof subresources)[number];

/** S3 style: the operation is named by a bare query parameter on the bucket URL. */
function subresource(c: Context<AppEnv>): Subresource {
  const keys = Object.keys(c.req.queries());
  const named = subresources.filter((s) => keys.includes(s));
  if (named.length !== 1) {
    throw new ServiceError('InvalidQuery', `name exactly one of ?${subresources.join(', ?')} on a bucket URL`);
  }
  assertQueryKeys(c, named);
  return named[0]!;
}

function wantsJson(c: Context): boolean {
  return (c.req.header('accept') ?? '').toLowerCase().includes('application/json');
}

/** A short-lived access key for one bucket, with the caller's read/write rights there (never admin). */
async function connectionInfo(c: Context<AppEnv>, bucket: string): Promise<ConnectionInfo> {
  const principal = c.get('principal');
  const actions = (['read', 'write'] as const).filter(
    (a) => principal.actions.includes(a) || principal.actions.includes('admin'),
  ) as Action[];
  requireScope(principal, bucket, actions.includes('write') ? 'write' : 'read');
  const deps = c.get('deps');
  await deps.guard.assertTransferable(bucket);
  const key = await deps.keys.createAccessKey({
    bucket,
    actions,
    apiKeyId: principal.apiKeyId,
    ttlSeconds: deps.config.accessKeyTtlSeconds,
    now: deps.now(),
  });
  const base = publicBaseUrl(c);
  return {
    accessKey: { id: key.id, secret: key.secret, expiresAt: key.expiresAt.toISOString() },
    atsEndpoint: base,
    bucket,
    engine: { host: deps.config.engineHost, port: deps.config.enginePort },
    fallbackUrl: `${base}/v1/fallback`,
    protocolVersion,
  };
}

function connectionInfoXml(info: ConnectionInfo): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<FASPConnectionInfo><AccessKey><Id>${xmlEscape(info.accessKey.id)}</Id><Secret>${xmlEscape(info.accessKey.secret)}</Secret></AccessKey>` +
    `<ATSEndpoint>${xmlEscape(info.atsEndpoint)}</ATSEndpoint></FASPConnectionInfo>`
  );
}

/** `GET /{bucket}?faspConnectionInfo` (IBM COS compatible) and `GET|PUT /{bucket}?transferPreferences`. */
export const bucketRoutes = new Hono<AppEnv>()
  .get('/:bucket', authenticate(), async (c) => {
    const which = subresource(c);
    const bucket = servedBucket(c, c.req.param('bucket'));
    if (which === 'faspConnectionInfo') {
      const info = await connectionInfo(c, bucket);
      c.header('cache-control', 'no-store');
      if (wantsJson(c)) return c.json(info);
      return c.body(connectionInfoXml(info), 200, { 'content-type': 'application/xml' });
    }
    const stored = await readPreferences(c, bucket);
    if (wantsJson(c)) return c.json({ bucket, preferences: stored.preferences, updatedAt: stored.updatedAt });
    return c.body(preferencesXml(bucket, stored), 200, { 'content-type': 'application/xml' });
  })
  .put('/:bucket', authenticate(), limitBody(preferencesMaxBodyBytes), async (c) => {
    if (subresource(c) !== 'transferPreferences') {
      throw new ServiceError('InvalidQuery', '?faspConnectionInfo is read with GET');
    }
    const bucket = servedBucket(c, c.req.param('bucket'));
    const xml = isXmlRequest(c);
    const patch = xml ? patchFromXml(await c.req.text()) : await readJson(c, bucketPreferencesPatchSchema);
    const stored = await writePreferences(c, bucket, { patch });
    if (xml) return c.body(preferencesXml(bucket, stored), 200, { 'content-type': 'application/xml' });
    return c.json({ bucket, preferences: stored.preferences, updatedAt: stored.updatedAt });
  });
