import { describe, expect, it } from 'vitest';
import { classifyLockError } from '../../core/bucket-guard';

const s3Error = (name: string, status: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

describe('what an Object Lock lookup failure means', () => {
  it.each([
    ['ObjectLockConfigurationNotFoundError', 404, 'unlocked'],
    ['NoSuchBucket', 404, 'no-such-bucket'],
    ['NotImplemented', 501, 'unsupported'],
    ['AccessDenied', 403, 'unknown'],
    ['SlowDown', 503, 'unknown'],
    ['InternalError', 500, 'unknown'],
  ] as const)('%s (%i) → %s', (name, status, expected) => expect(classifyLockError(s3Error(name, status))).toBe(expected));

  it('treats a network failure as unknown', () => expect(classifyLockError(new Error('ECONNREFUSED'))).toBe('unknown'));
});
