import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SlipstreamInputError } from '../../client/sdk/errors';
import { expandUploadPaths, parseS3Url } from '../../client/sdk/files';

describe('parseS3Url', () => {
  it.each([
    ['s3://bucket', { bucket: 'bucket', key: '', isPrefix: true }],
    ['s3://bucket/', { bucket: 'bucket', key: '', isPrefix: true }],
    ['s3://bucket/photos/2026/', { bucket: 'bucket', key: 'photos/2026', isPrefix: true }],
    ['s3://my.bucket-1/a/b.txt', { bucket: 'my.bucket-1', key: 'a/b.txt', isPrefix: false }],
    ['s3://bucket/with space/ü?#.txt', { bucket: 'bucket', key: 'with space/ü?#.txt', isPrefix: false }],
  ])('parses %s', (url, expected) => expect(parseS3Url(url)).toEqual(expected));

  it.each([
    ['bucket/key', /not an s3:\/\/ URL/],
    ['https://bucket/key', /not an s3:\/\/ URL/],
    ['s3://', /bucket name/],
    ['s3://Bad_Bucket/x', /bucket name/],
    ['s3://bucket/../etc', /object key/],
    ['s3://bucket/a//b', /object key/],
    ['s3://bucket//a', /object key/],
  ])('rejects %s', (url, message) => {
    expect(() => parseS3Url(url)).toThrow(SlipstreamInputError);
    expect(() => parseS3Url(url)).toThrow(message);
  });
});

describe('expandUploadPaths', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'slip-files-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (path: string, bytes: number) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), Buffer.alloc(bytes, 7));
  };

  it('stores a folder under its own name, nested, sorted, with sizes', async () => {
    write('album/b.jpg', 20);
    write('album/a.jpg', 10);
    write('album/sub/z/deep.bin', 3);
    write('album/sub/c.txt', 0);
    write('album/B.txt', 1);
    mkdirSync(join(dir, 'album', 'empty', 'nested'), { recursive: true });
    const { files, totalBytes, skipped } = await expandUploadPaths([join(dir, 'album')]);
    expect(files.map((f) => [f.index, f.path, f.sizeBytes])).toEqual([
      [0, 'album/B.txt', 1],
      [1, 'album/a.jpg', 10],
      [2, 'album/b.jpg', 20],
      [3, 'album/sub/c.txt', 0],
      [4, 'album/sub/z/deep.bin', 3],
    ]);
    expect(files[4]!.localPath).toBe(join(dir, 'album', 'sub', 'z', 'deep.bin'));
    expect(totalBytes).toBe(34);
    expect(skipped).toEqual([]);
  });

  it('mixes files and folders; a file keeps only its name', async () => {
    write('x/one.txt', 1);
    write('docs/two.txt', 2);
    const { files } = await expandUploadPaths([join(dir, 'x', 'one.txt'), join(dir, 'docs')]);
    expect(files.map((f) => f.path)).toEqual(['docs/two.txt', 'one.txt']);
  });

  it('skips symlinks inside folders, follows one named directly', async () => {
    write('real/file.txt', 5);
    write('outside.txt', 9);
    symlinkSync(join(dir, 'outside.txt'), join(dir, 'real', 'link.txt'));
    symlinkSync(join(dir, 'real'), join(dir, 'real', 'loop'));
    const { files, skipped } = await expandUploadPaths([join(dir, 'real')]);
    expect(files.map((f) => f.path)).toEqual(['real/file.txt']);
    expect(skipped.map((s) => s.localPath).sort()).toEqual([join(dir, 'real', 'link.txt'), join(dir, 'real', 'loop')]);
    expect(skipped[0]!.reason).toMatch(/symbolic link/);
    const direct = await expandUploadPaths([join(dir, 'real', 'link.txt')]);
    expect(direct.files.map((f) => [f.path, f.sizeBytes])).toEqual([['link.txt', 9]]);
  });

  it('yields nothing for empty folders', async () => {
    mkdirSync(join(dir, 'empty', 'a', 'b'), { recursive: true });
    expect((await expandUploadPaths([join(dir, 'empty')])).files).toEqual([]);
  });

  it('refuses two files that would get the same key, missing paths and too many files', async () => {
    write('a/same.txt', 1);
    write('b/same.txt', 1);
    await expect(expandUploadPaths([join(dir, 'a', 'same.txt'), join(dir, 'b', 'same.txt')])).rejects.toThrow(/both be stored as "same.txt"/);
    await expect(expandUploadPaths([join(dir, 'nope')])).rejects.toThrow(/no such file or folder/);
    await expect(expandUploadPaths([])).rejects.toThrow(SlipstreamInputError);
    write('many/1', 0);
    write('many/2', 0);
    write('many/3', 0);
    await expect(expandUploadPaths([join(dir, 'many')], { maxFiles: 2 })).rejects.toThrow(/more than 2 files/);
    expect((await expandUploadPaths([join(dir, 'many')], { maxFiles: 3 })).files).toHaveLength(3);
  });

  it('refuses names that cannot be object keys', async () => {
    write('bad/back\\slash.txt', 1);
    await expect(expandUploadPaths([join(dir, 'bad')])).rejects.toThrow(/must not contain backslashes/);
  });
});
