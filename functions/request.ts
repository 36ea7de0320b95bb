import type { Context } from 'hono';
import { bucketNameProblem } from '../contracts';
import { servesBucket } from '../core/config';
import { ServiceError } from '../core/errors';
import type { AppEnv } from './env';

/** A bucket named in a path or body: 400 for a bad name, 404 for one this deployment does not serve. */
export function servedBucket(c: Context<AppEnv>, bucket: string): string {
  const problem = bucketNameProblem(bucket);
  if (problem) throw new ServiceError('InvalidBucketName', `"${bucket.slice(0, 80)}" is not a valid bucket name: it ${problem}`);
  if (!servesBucket(c.get('deps').config, bucket)) {
    throw new ServiceError('NoSuchBucket', `bucket ${bucket} is not served by this Slipstream deployment`);
  }
  return bucket;
}

/** The first of a header's comma-separated values (each proxy in a chain may append its own). */
function forwarded(c: Context, name: string): string | undefined {
  const value = c.req.header(name)?.split(',')[0]?.trim();
  return value === '' ? undefined : value;
}

function badForwarded(name: string, value: string, what: string): ServiceError {
  return new ServiceError('ValidationError', `the reverse proxy sent ${name}: "${value.slice(0, 100)}", which is not ${what}`);
}

/** A DNS name, IPv4 address or bracketed IPv6 address, then an optional port. */
const hostPattern = /^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/;

/** A path prefix such as `/slipstream`: segments of URL path characters, no `.`/`..`, no empty ones. */
const prefixPattern = /^(\/[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)*\/?$/;

/**
 * The reverse proxy's view of the request (X-Forwarded-Proto/-Host/-Port/-Prefix, as nginx or Traefik
 * set them) applied over `base`; a header that is absent leaves that part as it is.
 */
function applyForwarded(c: Context, base: URL): void {
  const proto = forwarded(c, 'x-forwarded-proto');
  if (proto !== undefined) {
    if (!/^https?$/i.test(proto)) throw badForwarded('X-Forwarded-Proto', proto, 'http or https');
    base.protocol = `${proto.toLowerCase()}:`;
  }
  const host = forwarded(c, 'x-forwarded-host');
  if (host !== undefined) {
    const match = hostPattern.exec(host);
    if (!match) throw badForwarded('X-Forwarded-Host', host, 'a host[:port]');
    // The URL host setter keeps the old port when the new host has none: set both.
    base.hostname = match[1]!;
    base.port = match[2] ?? '';
  }
  const port = forwarded(c, 'x-forwarded-port');
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65_535) throw badForwarded('X-Forwarded-Port', port, 'a port number');
    base.port = port; // the scheme's default port drops out of the URL
  }
  const prefix = forwarded(c, 'x-forwarded-prefix');
  if (prefix !== undefined) {
    if (!prefixPattern.test(prefix) || prefix.split('/').some((s) => s === '.' || s === '..')) throw badForwarded('X-Forwarded-Prefix', prefix, 'a URL path');
    base.pathname = prefix;
  }
}

/**
 * The API's base URL as clients see it, no trailing slash: configured (`publicUrl`, which may carry a
 * path prefix) or the origin this request came in on; with `trustProxy`, the reverse proxy's
 * X-Forwarded-* headers override either. Without trustProxy those headers are ignored: any client can
 * send them, and trusting them would let it choose the URLs in the specs and grants the API issues.
 */
export function publicBaseUrl(c: Context<AppEnv>): string {
  const { publicUrl, trustProxy } = c.get('deps').config;
  const base = new URL(publicUrl ?? new URL(c.req.url).origin);
  if (trustProxy) applyForwarded(c, base);
  return `${base.origin}${base.pathname}`.replace(/\/+$/, '');
}

/** Only the query parameters a route knows; anything else is a mistake worth reporting. */
export function assertQueryKeys(c: Context, allowed: readonly string[]): void {
  const unknown = Object.keys(c.req.queries()).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new ServiceError('InvalidQuery', `unknown query parameter${unknown.length > 1 ? 's' : ''}: ${unknown.slice(0, 5).join(', ')}`);
  }
}

export function nowSeconds(deps: { now: () => Date }): number {
  return Math.floor(deps.now().getTime() / 1000);
}
