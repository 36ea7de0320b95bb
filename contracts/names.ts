import { z } from 'zod';

const bucketNamePattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const ipAddressPattern = /^\d{1,3}(\.\d{1,3}){3}$/;

/** S3's general-purpose bucket naming rules, so a bad name fails here and not deep in the SDK. */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'must be 3 to 63 characters long';
  if (!bucketNamePattern.test(name)) {
    return 'may contain only lowercase letters, digits, dots and hyphens, and must start and end with a letter or digit';
  }
  if (name.includes('..')) return 'must not contain two adjacent dots';
  if (ipAddressPattern.test(name)) return 'must not be formatted as an IP address';
  if (name.startsWith('xn--') || name.endsWith('-s3alias')) return 'uses a prefix or suffix reserved by S3';
  return undefined;
}

export const bucketNameSchema = z.string().superRefine((name, ctx) => {
  const problem = bucketNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: `bucket name ${problem}` });
});

export const maxObjectKeyBytes = 1024;

/**
 * Object keys we accept. Stricter than S3 on purpose: a key is also a relative file path on the
 * client, so `..` segments, a leading `/`, backslashes and control characters are refused.
 */
export function objectKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'must not be empty';
  if (new TextEncoder().encode(key).length > maxObjectKeyBytes) return `must be at most ${maxObjectKeyBytes} bytes of UTF-8`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'must not contain NUL or other control characters';
  if (key.startsWith('/')) return 'must not start with "/"';
  if (key.includes('\\')) return 'must not contain backslashes';
  if (key.split('/').some((segment) => segment === '..' || segment === '.')) return 'must not contain "." or ".." path segments';
  if (key.includes('//')) return 'must not contain empty path segments ("//")';
  return undefined;
}

export const objectKeySchema = z.string().superRefine((key, ctx) => {
  const problem = objectKeyProblem(key);
  if (problem) ctx.addIssue({ code: 'custom', message: `object key ${problem}` });
});

/** A key prefix: empty (the whole bucket) or a valid key ending in "/". */
export const keyPrefixSchema = z.string().superRefine((prefix, ctx) => {
  if (prefix === '') return;
  const problem = prefix.endsWith('/') ? objectKeyProblem(prefix.slice(0, -1)) : 'must end with "/"';
  if (problem) ctx.addIssue({ code: 'custom', message: `key prefix ${problem}` });
});

/** Turns a user-supplied root such as "/photos/2026" or "photos/2026/" into the prefix "photos/2026/". */
export function normalizePrefix(root: string | undefined): string {
  const trimmed = (root ?? '').replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
