import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Secrets are 32 random bytes, so one SHA-256 is enough: there is nothing to brute-force. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function secretMatches(secret: string, expectedHashHex: string): boolean {
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const expected = Buffer.from(expectedHashHex, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export function newId(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}
