import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { transferSpecSchema, type TransferSpec } from '../../contracts';

/**
 * The resume journal: a re-run of the same transfer (same endpoint, bucket, prefix and the same files
 * with the same sizes and mtimes) reuses the specs, and so the transfer ids and tokens, of the run that
 * was interrupted while the tokens are still valid. The engine then skips what is already stored.
 * Entries hold tokens and session secrets: files are 0600 in a 0700 folder.
 */

export const journalVersion = 1;
/** A token this close to expiry is not reused: a session needs time to finish. */
export const minReuseRemainingMs = 10 * 60_000;
/** Entries kept at most; older ones are dropped first. */
export const maxJournalEntries = 1000;
/** Older entries are dropped unread; tokens live far shorter (a day on the local stack). */
export const maxEntryAgeMs = 7 * 86_400_000;

const entrySchema = z.object({
  version: z.literal(journalVersion),
  key: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  specs: z.array(transferSpecSchema).min(1),
});
export type JournalEntry = z.infer<typeof entrySchema>;

export type JournalKeyInput =
  | {
      direction: 'upload';
      endpoint: string;
      bucket: string;
      prefix: string;
      /** Sorted by path (as `expandUploadPaths` returns them). */
      files: readonly { path: string; sizeBytes: number; mtimeMs: number }[];
    }
  | { direction: 'download'; endpoint: string; bucket: string; prefix: string; paths: readonly string[]; localRoot: string };

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env, homeDir: string = homedir()): string {
  const explicit = env.SLIPSTREAM_STATE_DIR?.trim();
  if (explicit) return explicit;
  const cache = env.XDG_CACHE_HOME?.trim() || join(homeDir, '.cache');
  return join(cache, 'slipstream');
}

/** SHA-256 over the identity of a transfer; NUL-separated so no two inputs collide by concatenation. */
export function journalKey(input: JournalKeyInput): string {
  const hash = createHash('sha256');
  hash.update(`v${journalVersion}\0${input.direction}\0${input.endpoint}\0${input.bucket}\0${input.prefix}\0`);
  if (input.direction === 'upload') {
    for (const f of input.files) hash.update(`${f.path}\0${f.sizeBytes}\0${Math.trunc(f.mtimeMs)}\n`);
  } else {
    hash.update(`${input.localRoot}\0`);
    for (const p of input.paths) hash.update(`${p}\n`);
  }
  return hash.digest('hex');
}

/** The earliest token expiry among the specs. */
function expiryOf(specs: readonly TransferSpec[]): Date {
  return new Date(Math.min(...specs.map((s) => new Date(s.slipstream.token_expires_at).getTime())));
}

export class TransferJournal {
  readonly dir: string;

  constructor(stateDir: string = defaultStateDir()) {
    this.dir = join(stateDir, 'journal');
  }

  private file(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error('journal keys are SHA-256 hex digests');
    return join(this.dir, `${key}.json`);
  }

  /** The entry for `key` if it exists, parses and its tokens have time left; otherwise undefined. */
  async get(key: string, now: Date = new Date()): Promise<JournalEntry | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(key), 'utf8');
    } catch {
      return undefined;
    }
    let entry: JournalEntry | undefined;
    try {
      const parsed = entrySchema.safeParse(JSON.parse(text));
      entry = parsed.success && parsed.data.key === key ? parsed.data : undefined;
    } catch {
      entry = undefined;
    }
    if (!entry || new Date(entry.expiresAt).getTime() - now.getTime() < minReuseRemainingMs) {
      await this.delete(key);
      return undefined;
    }
    return entry;
  }

  async put(key: string, specs: readonly TransferSpec[], now: Date = new Date()): Promise<JournalEntry> {
    const entry: JournalEntry = {
      version: journalVersion,
      key,
      createdAt: now.toISOString(),
      expiresAt: expiryOf(specs).toISOString(),
      specs: [...specs],
    };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Write then rename: a crash mid-write never leaves a half entry under the real name.
    const temp = join(this.dir, `.${key}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(temp, JSON.stringify(entry), { mode: 0o600 });
    await rename(temp, this.file(key));
    await this.prune(now);
    return entry;
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }

  /**
   * Drops entries older than `maxAgeMs` (by file time: no parsing, so it stays cheap with large specs;
   * `get` checks the real expiry), then the oldest beyond `maxEntries`.
   */
  async prune(now: Date = new Date(), maxEntries: number = maxJournalEntries): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => /^[0-9a-f]{64}\.json$/.test(n));
    } catch {
      return;
    }
    const entries: { name: string; mtimeMs: number }[] = [];
    for (const name of names) {
      const info = await stat(join(this.dir, name)).catch(() => undefined);
      if (!info) continue;
      if (now.getTime() - info.mtimeMs > maxEntryAgeMs) await rm(join(this.dir, name), { force: true });
      else entries.push({ name, mtimeMs: info.mtimeMs });
    }
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const old of entries.slice(0, Math.max(0, entries.length - maxEntries))) await rm(join(this.dir, old.name), { force: true });
  }
}
