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

/** The API's base URL as clients see it: configured, or the origin this request came in on. */
export function publicBaseUrl(c: Context<AppEnv>): string {
  return (c.get('deps').config.publicUrl ?? new URL(c.req.url).origin).replace(/\/+$/, '');
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
