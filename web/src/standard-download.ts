import { maxDownloadKeysPerCall, maxObjectsPerPage, type ObjectDownloadUrls } from '../../contracts';
import type { Api } from './api';
import { describeError, StorageError } from './errors';
import { runPool } from './pool';
import { ResumableTransfer } from './resumable';
import type { TransferStore } from './transfers';

/** What the user selected in one folder: objects, and prefixes ("folders", ending in `/`). */
export interface DownloadSelection {
  bucket: string;
  /** The folder shown: paths below it are kept (`photos/2026/a.jpg` from `photos/` → `2026/a.jpg`). */
  basePrefix: string;
  keys: readonly { key: string; sizeBytes: number }[];
  prefixes: readonly string[];
}

/** Files one download may hold; beyond, the user is told to pick a narrower folder. */
export const maxDownloadFiles = 100_000;
const fileConcurrency = 3;
/** Without a folder to write into, the browser saves each file itself; more than this becomes a flood of prompts. */
const maxBrowserSaves = 20;

declare global {
  interface Window {
    /** File System Access API (Chromium): a folder the page may write into, chosen by the user. */
    showDirectoryPicker?: (options?: { id?: string; mode?: 'read' | 'readwrite' }) => Promise<FileSystemDirectoryHandle>;
  }
}

/** Asks for the folder to save into; must run first in a click handler (the browser wants a gesture). */
export async function pickDownloadFolder(): Promise<FileSystemDirectoryHandle | null> {
  if (!window.showDirectoryPicker) return null;
  return window.showDirectoryPicker({ id: 'slipstream-downloads', mode: 'readwrite' });
}

interface FileState {
  key: string;
  /** Below the chosen folder, `/`-separated. */
  path: string;
  sizeBytes: number;
  etag: string | null;
  url: string | null;
  receivedBytes: number;
  writable: FileSystemWritableFileStream | null;
  done: boolean;
}

/** Every object the selection names, with its path below the shown folder. */
async function expand(api: Api, selection: DownloadSelection, signal: AbortSignal): Promise<{ key: string; sizeBytes: number }[]> {
  const files = [...selection.keys];
  for (const prefix of selection.prefixes) {
    let cursor: string | undefined;
    do {
      const page = await api.listObjects(selection.bucket, { prefix, limit: maxObjectsPerPage, ...(cursor ? { cursor } : {}) }, signal);
      // Zero-byte "folder" markers are folders, not files.
      files.push(...page.objects.filter((o) => !o.key.endsWith('/')));
      if (files.length > maxDownloadFiles) throw new Error(`More than ${maxDownloadFiles.toLocaleString()} files: pick a narrower folder.`);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
  return files;
}

/** A key's path below the shown folder as names a local folder accepts, or why not. */
function localPath(key: string, basePrefix: string): string[] | string {
  const segments = key.slice(basePrefix.length).split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) return `${key} has no name that can be saved as a file`;
  return segments;
}

/**
 * A Standard download: presigned GETs straight from S3 into a folder the user picked (File System
 * Access API), streamed chunk by chunk (never a whole file in memory). Pause aborts the GETs; resume
 * continues each file with a `Range` request from the byte it had, with `If-Match` so a changed object is
 * refused rather than spliced. Cancel discards the unfinished files.
 */
export class StandardDownload extends ResumableTransfer {
  readonly id: string;
  /** Null until the selection is expanded into files (the first attempt's listing). */
  private files: FileState[] | null = null;
  private readonly dirs = new Map<string, Promise<FileSystemDirectoryHandle>>();

  constructor(
    private readonly api: Api,
    store: TransferStore,
    private readonly selection: DownloadSelection,
    private readonly folder: FileSystemDirectoryHandle,
    name: string,
  ) {
    super(store);
    this.id = store.add({ name, detail: `into ${folder.name || 'the chosen folder'}`, direction: 'download', transport: 'standard', state: 'queued', bytesTotal: null, filesTotal: null }, this);
    void this.run();
  }

  async cancel(): Promise<void> {
    if (!this.stop('canceled')) return;
    await this.discardUnfinished();
    this.store.update(this.id, { state: 'canceled', rateKbps: 0 });
  }

  private async run(): Promise<void> {
    this.store.update(this.id, { state: 'running' });
    const outcome = await this.attempts(async (signal) => {
      const files = (this.files ??= await this.expand(signal));
      const pending = files.filter((f) => !f.done);
      for (let i = 0; i < pending.length; i += maxDownloadKeysPerCall) {
        const batch = pending.slice(i, i + maxDownloadKeysPerCall);
        await this.sign(batch, signal);
        await runPool(batch, fileConcurrency, (file) => this.fetchFile(file, signal));
      }
    });
    if (outcome.state === 'failed') {
      this.stop('failed');
      await this.discardUnfinished();
      this.store.update(this.id, { state: 'failed', rateKbps: 0, message: `Download failed: ${describeError(outcome.error)}` });
    } else if (outcome.state === 'completed') {
      this.store.update(this.id, { state: 'completed', rateKbps: 0, bytesDone: this.receivedBytes(), filesDone: this.files?.length ?? 0 });
    }
  }

  /** The selection's files; a pause while listing lists again on resume. */
  private async expand(signal: AbortSignal): Promise<FileState[]> {
    const files = (await expand(this.api, this.selection, signal)).map((f) => {
      const path = localPath(f.key, this.selection.basePrefix);
      if (typeof path === 'string') throw new Error(path);
      return { key: f.key, path: path.join('/'), sizeBytes: f.sizeBytes, etag: null, url: null, receivedBytes: 0, writable: null, done: false };
    });
    this.store.update(this.id, { bytesTotal: files.reduce((s, f) => s + f.sizeBytes, 0), filesTotal: files.length });
    return files;
  }

  private async sign(files: FileState[], signal: AbortSignal): Promise<void> {
    const unsigned = files.filter((f) => f.url === null);
    if (unsigned.length === 0) return;
    const { files: urls } = await this.api.downloadUrls(this.selection.bucket, unsigned.map((f) => f.key), 'inline', signal);
    const byKey = new Map<string, ObjectDownloadUrls['files'][number]>(urls.map((u) => [u.key, u]));
    for (const file of unsigned) {
      const url = byKey.get(file.key)!;
      file.url = url.url;
      // The object as it is now: a resumed range must come from this very version.
      file.etag ??= url.etag;
      file.sizeBytes = url.sizeBytes;
    }
  }

  private async fetchFile(file: FileState, signal: AbortSignal): Promise<void> {
    if (!file.writable) {
      const segments = file.path.split('/');
      const dir = await this.dir(segments.slice(0, -1));
      const handle = await dir.getFileHandle(segments[segments.length - 1]!, { create: true });
      file.writable = await handle.createWritable();
      file.receivedBytes = 0;
    }
    if (file.receivedBytes < file.sizeBytes) {
      const headers: Record<string, string> = {};
      if (file.receivedBytes > 0) headers.range = `bytes=${file.receivedBytes}-`;
      if (file.etag && file.receivedBytes > 0) headers['if-match'] = file.etag;
      let response = await this.get(file, headers, signal);
      if (response.status === 403) {
        // The link expired (they last an hour): one fresh link, then the answer stands.
        file.url = null;
        await this.sign([file], signal);
        response = await this.get(file, headers, signal);
      }
      if (response.status === 412) throw new StorageError(412, `${file.key} changed while it was being downloaded; download it again.`);
      if (response.status !== (file.receivedBytes > 0 ? 206 : 200) || !response.body) {
        throw new StorageError(response.status, `The storage service refused ${file.key} (HTTP ${response.status}).`);
      }
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await file.writable.write(value);
          file.receivedBytes += value.byteLength;
          this.report();
        }
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw new StorageError(0, `The download of ${file.key} was interrupted.`, { cause: error });
      }
    }
    if (file.receivedBytes !== file.sizeBytes) throw new StorageError(502, `${file.key} arrived with ${file.receivedBytes} of ${file.sizeBytes} bytes.`);
    await file.writable.close();
    file.writable = null;
    file.done = true;
    this.report();
  }

  private async get(file: FileState, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    try {
      return await fetch(file.url!, { headers, signal, cache: 'no-store' });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new StorageError(0, `The storage service could not be reached while downloading ${file.key}.`, { cause: error });
    }
  }

  private dir(segments: string[]): Promise<FileSystemDirectoryHandle> {
    const path = segments.join('/');
    let dir = this.dirs.get(path);
    if (!dir) {
      dir = segments.length === 0 ? Promise.resolve(this.folder) : this.dir(segments.slice(0, -1)).then((parent) => parent.getDirectoryHandle(segments[segments.length - 1]!, { create: true }));
      this.dirs.set(path, dir);
    }
    return dir;
  }

  /** Unfinished files go: their data was never committed (a writable only lands on close). */
  private async discardUnfinished(): Promise<void> {
    await Promise.allSettled(
      (this.files ?? [])
        .filter((f) => !f.done && f.writable)
        .map(async (f) => {
          await f.writable!.abort();
          f.writable = null;
          const segments = f.path.split('/');
          await (await this.dir(segments.slice(0, -1))).removeEntry(segments[segments.length - 1]!);
        }),
    );
  }

  private receivedBytes(): number {
    return (this.files ?? []).reduce((s, f) => s + f.receivedBytes, 0);
  }

  private report(): void {
    if (this.paused || this.canceled) return;
    const bytesDone = this.receivedBytes();
    this.store.update(this.id, { bytesDone, filesDone: (this.files ?? []).filter((f) => f.done).length, rateKbps: this.meter.sample(bytesDone) });
  }
}

/**
 * Without a folder to write into (browsers other than Chromium's): each object is a link the browser
 * saves itself (`Content-Disposition: attachment`), shown as handed over rather than tracked.
 */
export async function saveWithBrowser(api: Api, store: TransferStore, selection: DownloadSelection, name: string): Promise<void> {
  const id = store.add({ name, detail: "to your browser's downloads", direction: 'download', transport: 'standard', state: 'running', bytesTotal: null, filesTotal: null }, null);
  try {
    const files = await expand(api, selection, new AbortController().signal);
    if (files.length > maxBrowserSaves) {
      throw new Error(`This browser saves each file separately; ${files.length} files is too many. Use Chrome or Edge (which can save into a folder) or High speed.`);
    }
    const { files: urls } = await api.downloadUrls(selection.bucket, files.map((f) => f.key), 'attachment');
    for (const file of urls) {
      const link = document.createElement('a');
      link.href = file.url;
      link.rel = 'noopener';
      link.click();
      await new Promise((next) => setTimeout(next, 300));
    }
    const bytesTotal = urls.reduce((s, f) => s + f.sizeBytes, 0);
    store.update(id, { state: 'completed', bytesTotal, bytesDone: bytesTotal, filesTotal: urls.length, filesDone: urls.length, message: "Handed to your browser's downloads." });
  } catch (error) {
    store.update(id, { state: 'failed', message: `Download failed: ${describeError(error)}` });
  }
}
