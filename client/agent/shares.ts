import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, join, sep } from 'node:path';
import { sharePathProblem, type Share, type ShareEntries, type ShareEntry } from './schemas';

/** Entries one listing returns at most: folders first, then files, by name. */
export const maxListedEntries = 5000;

/** Why a path was refused; `status` is the HTTP status the agent answers with. */
export class ShareAccessError extends Error {
  override name = 'ShareAccessError';
  constructor(
    readonly status: 400 | 403 | 404,
    readonly code: 'InvalidPath' | 'OutsideShare' | 'NoSuchShare' | 'NotFound',
    message: string,
  ) {
    super(message);
  }
}

interface Root {
  id: string;
  name: string;
  /** The folder's real path (symlinks resolved): what every resolved path must stay under. */
  realRoot: string;
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The folders the user shared when starting the agent (`slip agent --share DIR`): the only places the
 * console can upload from. A page names files by share id and a relative path; `resolve` refuses
 * anything that is not a plain relative path, then resolves symlinks and refuses a result outside the
 * share's real root, so neither `..` nor a symlink can reach another file on the machine.
 */
export class Shares {
  private constructor(private readonly roots: readonly Root[]) {}

  static async open(folders: readonly string[]): Promise<Shares> {
    const roots: Root[] = [];
    const names = new Set<string>();
    for (const [i, folder] of folders.entries()) {
      const realRoot = await realpath(folder).catch((error: NodeJS.ErrnoException) => {
        throw new Error(`cannot share ${folder}: ${error.code === 'ENOENT' ? 'no such folder' : error.message}`);
      });
      if (!(await stat(realRoot)).isDirectory()) throw new Error(`cannot share ${folder}: it is not a folder`);
      let name = basename(realRoot) || realRoot;
      for (let n = 2; names.has(name); n++) name = `${basename(realRoot)} (${n})`;
      names.add(name);
      roots.push({ id: `s${i + 1}`, name, realRoot });
    }
    return new Shares(roots);
  }

  get count(): number {
    return this.roots.length;
  }

  list(): Share[] {
    return this.roots.map(({ id, name }) => ({ id, name }));
  }

  /** The local folders, for the agent's start-up message. */
  describe(): { name: string; folder: string }[] {
    return this.roots.map(({ name, realRoot }) => ({ name, folder: realRoot }));
  }

  /** The real path of `path` inside share `id`, or a ShareAccessError. */
  async resolve(id: string, path: string): Promise<string> {
    const root = this.roots.find((r) => r.id === id);
    if (!root) throw new ShareAccessError(404, 'NoSuchShare', `the agent shares no folder "${id.slice(0, 64)}"`);
    const problem = sharePathProblem(path);
    if (problem) throw new ShareAccessError(400, 'InvalidPath', `"${path.slice(0, 200)}" is not a path inside a shared folder: it ${problem}`);
    const candidate = path === '' ? root.realRoot : join(root.realRoot, ...path.split('/'));
    const real = await realpath(candidate).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') throw new ShareAccessError(404, 'NotFound', `${path} is not in shared folder ${root.name}`);
      throw error;
    });
    if (real !== root.realRoot && !real.startsWith(root.realRoot + sep)) {
      throw new ShareAccessError(403, 'OutsideShare', `${path} leads outside shared folder ${root.name} (a symbolic link); it is not shared`);
    }
    return real;
  }

  /**
   * One folder of a share. Symbolic links are left out (uploads skip them inside folders too), and so
   * is anything that is neither a regular file nor a folder.
   */
  async entries(id: string, path: string): Promise<ShareEntries> {
    const dir = await this.resolve(id, path);
    if (!(await stat(dir)).isDirectory()) throw new ShareAccessError(400, 'InvalidPath', `${path} is a file, not a folder`);
    const dirents = await readdir(dir, { withFileTypes: true });
    const candidates = dirents.filter((d) => d.isFile() || d.isDirectory()).sort((a, b) => Number(b.isDirectory()) - Number(a.isDirectory()) || byName(a, b));
    const entries: ShareEntry[] = [];
    for (const d of candidates.slice(0, maxListedEntries)) {
      // lstat: a name swapped for a symlink since readdir is left out, not followed.
      const info = await lstat(join(dir, d.name)).catch(() => undefined);
      if (!info || !(info.isFile() || info.isDirectory())) continue;
      entries.push({
        name: d.name,
        path: path === '' ? d.name : `${path}/${d.name}`,
        type: info.isDirectory() ? 'folder' : 'file',
        sizeBytes: info.isFile() ? info.size : null,
        modified: info.mtime.toISOString(),
      });
    }
    return { share: id, path, entries, truncated: candidates.length > maxListedEntries };
  }
}
