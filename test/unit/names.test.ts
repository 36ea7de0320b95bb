import { describe, expect, it } from 'vitest';
import { bucketNameProblem, normalizePrefix, objectKeyProblem } from '../../contracts';

describe('bucket names', () => {
  it.each(['local', 'my-bucket.2026', 'a1b'])('accepts %s', (name) => expect(bucketNameProblem(name)).toBeUndefined());
  it.each(['ab', 'A-bucket', 'my_bucket', '-lead', 'trail-', 'a..b', '10.0.0.1', 'xn--punycode', 'x'.repeat(64)])('rejects %s', (name) =>
    expect(bucketNameProblem(name)).toBeDefined());
});

describe('object keys', () => {
  it.each(['a', 'photos/2026/img 1.jpg', 'ünïcode/文件.txt', 'dir/'])('accepts %s', (key) => expect(objectKeyProblem(key)).toBeUndefined());
  it.each(['', '/abs', '../x', 'a/../b', 'a/./b', 'a\u0000b', 'a\\b', 'a//b', 'x'.repeat(1025), 'é'.repeat(513)])('rejects %j', (key) =>
    expect(objectKeyProblem(key)).toBeDefined());
});

describe('prefixes', () => {
  it('normalizes roots to "" or "a/b/"', () => {
    expect(normalizePrefix(undefined)).toBe('');
    expect(normalizePrefix('/')).toBe('');
    expect(normalizePrefix('/photos/2026')).toBe('photos/2026/');
    expect(normalizePrefix('photos//')).toBe('photos/');
  });
});
