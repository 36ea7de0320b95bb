import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { bucketNameSchema, objectKeyProblem, objectKeySchema } from '../../contracts';
import { SlipstreamInputError } from './errors';

/** A local file to upload: its key below the destination prefix and what we know of it. */
export interface LocalFile {
  /** Position in the transfer (stream order), from 0. */
  index: number;
  /** Relative key, `/`-separated, below the destination prefix. */
  path: string;
  sizeBytes: number;
  localPath: string;
  mtimeMs: number;
}

export interface SkippedEntry {
  localPath: string;
  reason: string;
}

export interface ExpandedFiles {
  files: LocalFile[];
  skipped: SkippedEntry[];
  totalBytes: number;
}

/** A transfer of a million files is far beyond what one CLI run should hold in memory without thought. */
export const defaultMaxFiles = 1_000_000;
/** Skipped entries kept for the report; the count beyond is only counted. */
const maxSkippedReported = 1000;

/** Byte-wise (code unit) order: the same on every machine and locale. */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Local paths → files with sizes. A file is stored under its name; a folder under its own name with
 * everything below it (`./photos` → `photos/…`), recursively. Symlinks inside folders are skipped, not
 * followed (no cycles, nothing outside the tree); a symlink named on the command line is followed,
 * as the user asked for it. Empty folders yield nothing (object storage has no folders). Files are
 * returned sorted by key, so the same input always gives the same transfer.
 */
export async function expandUploadPaths(paths: readonly string[], options: { maxFiles?: number } = {}): Promise<ExpandedFiles> {
  const maxFiles = options.maxFiles ?? defaultMaxFiles;
  if (paths.length === 0) throw new SlipstreamInputError('name at least one local file or folder to upload');
  const found: Omit<LocalFile, 'index'>[] = [];
  const skipped: SkippedEntry[] = [];
  let skippedCount = 0;
  const skip = (localPath: string, reason: string) => {
    skippedCount++;
    if (skipped.length < maxSkippedReported) skipped.push({ localPath, reason });
  };
  const add = (file: Omit<LocalFile, 'index'>) => {
    if (found.length >= maxFiles) {
      throw new SlipstreamInputError(`more than ${maxFiles.toLocaleString('en-US')} files to upload; split the upload into several runs`);
    }
    found.push(file);
  };

  for (const given of paths) {
    const localPath = resolve(given);
    const info = await stat(localPath).catch((error: NodeJS.ErrnoException) => {
      throw new SlipstreamInputError(`cannot read ${given}: ${error.code === 'ENOENT' ? 'no such file or folder' : error.message}`);
    });
    const name = basename(localPath);
    if (info.isFile()) {
      add({ path: name, sizeBytes: info.size, localPath, mtimeMs: info.mtimeMs });
      continue;
    }
    if (!info.isDirectory()) {
      skip(localPath, 'not a regular file or folder');
      continue;
    }
    // Iterative walk with an explicit stack: no recursion depth limit; names sorted at each level.
    const stack: { dir: string; key: string }[] = [{ dir: localPath, key: name }];
    while (stack.length > 0) {
      const { dir, key } = stack.pop()!;
      let entries: string[];
      try {
        entries = (await readdir(dir)).sort(byName);
      } catch (error) {
        throw new SlipstreamInputError(`cannot list folder ${dir}: ${(error as Error).message}`);
      }
      const subdirs: { dir: string; key: string }[] = [];
      for (const entry of entries) {
        const entryPath = join(dir, entry);
        const entryKey = key === '' ? entry : `${key}/${entry}`;
        const entryInfo = await lstat(entryPath);
        if (entryInfo.isSymbolicLink()) skip(entryPath, 'symbolic link (not followed)');
        else if (entryInfo.isDirectory()) subdirs.push({ dir: entryPath, key: entryKey });
        else if (entryInfo.isFile()) add({ path: entryKey, sizeBytes: entryInfo.size, localPath: entryPath, mtimeMs: entryInfo.mtimeMs });
        else skip(entryPath, 'not a regular file or folder');
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }

  found.sort((a, b) => byName(a.path, b.path));
  for (let i = 1; i < found.length; i++) {
    if (found[i]!.path === found[i - 1]!.path) {
      throw new SlipstreamInputError(`${found[i - 1]!.localPath} and ${found[i]!.localPath} would both be stored as "${found[i]!.path}"`);
    }
  }
  for (const file of found) {
    const problem = objectKeyProblem(file.path);
    if (problem) throw new SlipstreamInputError(`${file.localPath} cannot be stored: its key "${file.path}" ${problem}`);
  }
  if (skippedCount > skipped.length) skipped.push({ localPath: '…', reason: `${skippedCount - skipped.length} more entries skipped` });
  const files = found.map((f, index) => ({ index, ...f }));
  return { files, skipped, totalBytes: files.reduce((sum, f) => sum + f.sizeBytes, 0) };
}

export interface S3Location {
  bucket: string;
  /** The key or prefix after the bucket, without a trailing `/`; `''` for the whole bucket. */
  key: string;
  /** The URL ended in `/` (or named only the bucket): it names a prefix. */
  isPrefix: boolean;
}

/** `s3://bucket`, `s3://bucket/prefix/`, `s3://bucket/key`. Keys follow contracts' object key rules. */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/s.exec(url);
  if (!match) throw new SlipstreamInputError(`"${url}" is not an s3:// URL; expected s3://bucket/prefix`);
  const bucket = match[1]!;
  const bucketCheck = bucketNameSchema.safeParse(bucket);
  if (!bucketCheck.success) throw new SlipstreamInputError(`"${url}": ${bucketCheck.error.issues[0]?.message ?? 'invalid bucket name'} ("${bucket}")`);
  const rest = match[2] ?? '';
  const key = rest.replace(/\/+$/, '');
  if (key !== '') {
    const keyCheck = objectKeySchema.safeParse(key);
    if (!keyCheck.success) throw new SlipstreamInputError(`"${url}": ${keyCheck.error.issues[0]?.message ?? 'invalid object key'}`);
  }
  return { bucket, key, isPrefix: key === '' || rest.endsWith('/') };
}

/** `s3://bucket/key`, for messages. */
export function formatS3Url(location: { bucket: string; key: string }): string {
  return `s3://${location.bucket}/${location.key}`;
}

/** Local path for a key, refusing anything that would land outside the target folder. */
export function localPathFor(root: string, path: string): string {
  const target = resolve(root, path);
  if (target !== resolve(root) && !target.startsWith(resolve(root) + sep)) throw new Error(`refusing to write outside ${root}: ${path}`);
  return target;
}
