import type { MiddlewareHandler } from 'hono';
import type { Action } from '../../contracts';
import { ServiceError } from '../../core/errors';
import { principalCovers, type Principal } from '../../core/state/principal';
import type { AppEnv } from '../env';

export type AuthScheme = 'bearer' | 'basic';

function unauthorized(message: string, schemes: readonly AuthScheme[]): ServiceError {
  const challenge = schemes.map((s) => (s === 'bearer' ? 'Bearer realm="slipstream"' : 'Basic realm="slipstream"')).join(', ');
  return new ServiceError('Unauthorized', message, { 'www-authenticate': challenge });
}

/**
 * Authenticates `Authorization: Bearer sk_…` (an API key) and, where allowed, `Basic id:secret` (an
 * access key from faspConnectionInfo). Wrong, missing, expired and revoked credentials all get 401.
 */
export function authenticate(schemes: readonly AuthScheme[] = ['bearer']): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const deps = c.get('deps');
    const header = c.req.header('authorization');
    if (!header) throw unauthorized(`send credentials: ${schemes.map((s) => (s === 'bearer' ? 'Authorization: Bearer sk_…' : 'Authorization: Basic <access key id:secret>')).join(' or ')}`, schemes);
    const [scheme = '', value = ''] = header.split(/\s+/, 2);
    let principal: Principal | undefined;
    const now = deps.now();
    if (scheme.toLowerCase() === 'bearer' && schemes.includes('bearer')) {
      principal = await deps.keys.verifyApiKey(value, now);
    } else if (scheme.toLowerCase() === 'basic' && schemes.includes('basic')) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) principal = await deps.keys.verifyAccessKey(decoded.slice(0, colon), decoded.slice(colon + 1), now);
    } else {
      throw unauthorized(`authorization scheme "${scheme}" is not accepted here`, schemes);
    }
    if (!principal) throw unauthorized('the credentials are wrong, expired or revoked', schemes);
    c.set('principal', principal);
    await next();
  };
}

/** 403 unless the caller may do `action` on `bucket` (undefined: deployment-wide). */
export function requireScope(principal: Principal, bucket: string | undefined, action: Action): void {
  if (!principalCovers(principal, bucket, action)) {
    const target = bucket === undefined ? 'this deployment (a key scoped to all buckets, "*")' : `bucket ${bucket}`;
    throw new ServiceError('Forbidden', `this key may not ${action} on ${target}`);
  }
}
