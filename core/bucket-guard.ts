import { GetObjectLockConfigurationCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { ServiceError } from './errors';

/**
 * What the storage says about a bucket's immutability:
 * - `locked`: S3 Object Lock is enabled (an immutability policy);
 * - `unlocked`: the server implements Object Lock and the bucket does not have it;
 * - `unsupported`: the server does not implement Object Lock at all (it answers 501 NotImplemented,
 *   as s3rver does), so no object in it can be locked: transfers are allowed.
 * Any other failure to find out (access denied, throttling, 5xx, network) is "cannot say", and we
 * refuse with 503 `ImmutabilityUnknown` rather than risk writing into a locked bucket.
 */
export type LockState = 'locked' | 'unlocked' | 'unsupported';

interface S3ErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function describe(error: unknown): { name: string; status: number | undefined } {
  const e = (error ?? {}) as S3ErrorShape;
  return { name: e.name ?? e.Code ?? 'Error', status: e.$metadata?.httpStatusCode };
}

export function classifyLockError(error: unknown): LockState | 'no-such-bucket' | 'unknown' {
  const { name, status } = describe(error);
  if (name === 'ObjectLockConfigurationNotFoundError') return 'unlocked';
  if (name === 'NoSuchBucket') return 'no-such-bucket';
  if (status === 501 || name === 'NotImplemented') return 'unsupported';
  return 'unknown';
}

export class BucketGuard {
  constructor(private readonly s3: S3Client) {}

  async lockState(bucket: string): Promise<LockState> {
    const [head, lock] = await Promise.allSettled([
      this.s3.send(new HeadBucketCommand({ Bucket: bucket })),
      this.s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket })),
    ]);
    if (head.status === 'rejected') {
      const { name, status } = describe(head.reason);
      if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') {
        throw new ServiceError('NoSuchBucket', `bucket ${bucket} does not exist`);
      }
      throw new ServiceError(
        'StorageUnavailable',
        `the storage service could not be asked about bucket ${bucket} (${name}${status ? ` ${status}` : ''}); try again`,
        { 'retry-after': '5' },
      );
    }
    if (lock.status === 'fulfilled') {
      return lock.value.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled' ? 'locked' : 'unlocked';
    }
    const state = classifyLockError(lock.reason);
    if (state === 'no-such-bucket') throw new ServiceError('NoSuchBucket', `bucket ${bucket} does not exist`);
    if (state === 'unknown') {
      const { name, status } = describe(lock.reason);
      throw new ServiceError(
        'ImmutabilityUnknown',
        `could not find out whether bucket ${bucket} has an immutability policy (${name}${status ? ` ${status}` : ''}), ` +
          'so no transfer is started; try again, or check that the service may call s3:GetBucketObjectLockConfiguration',
        { 'retry-after': '5' },
      );
    }
    return state;
  }

  /** Throws 409 `BucketImmutable` for a locked bucket, whatever token or key the caller holds. */
  async assertTransferable(bucket: string): Promise<LockState> {
    const state = await this.lockState(bucket);
    if (state === 'locked') {
      throw new ServiceError(
        'BucketImmutable',
        `bucket ${bucket} has an immutability policy (S3 Object Lock), so high-speed and fallback transfers are refused; ` +
          'a standard upload straight to S3 (e.g. PutObject with the bucket\'s retention settings) is still possible',
      );
    }
    return state;
  }
}
