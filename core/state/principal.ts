import type { Action } from '../../contracts';

/** Who is calling, and what they may do: from an API key, or an access key minted from one. */
export interface Principal {
  readonly kind: 'api-key' | 'access-key';
  readonly keyId: string;
  /** The API key at the root of the grant (itself, for an API key). */
  readonly apiKeyId: string;
  readonly buckets: '*' | readonly string[];
  readonly actions: readonly Action[];
}

/** `bucket` undefined asks for a deployment-wide grant (key management), which needs bucket scope `*`. */
export function principalCovers(principal: Principal, bucket: string | undefined, action: Action): boolean {
  const bucketOk = principal.buckets === '*' || (bucket !== undefined && principal.buckets.includes(bucket));
  return bucketOk && (principal.actions.includes(action) || principal.actions.includes('admin'));
}

export function principalSeesBucket(principal: Principal, bucket: string): boolean {
  return principal.buckets === '*' || principal.buckets.includes(bucket);
}
