import { createHash } from 'node:crypto';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TransferSpec } from '../../contracts';
import { RangeSet } from '../../protocol/ranges';
import { compositeChecksum, partCountFor, partDigest, partSizeFor } from '../../protocol/transfer';
import type { FallbackDownloads, SlipstreamApi } from './api';
import { SlipstreamApiError } from './errors';
import { localPathFor } from './files';
import type { DownloadContinuation, SessionCallbacks, SessionFileError, SessionJob, SessionResult, UploadFile } from './session-types';

/**
 * The HTTPS path of a transfer (README "When UDP is blocked"): the same transfer the UDP session was
 * running, continued. Uploads finish each file's multipart upload through presigned part URLs, skipping
 * the parts the engine already made durable, and the service verifies the whole-file checksum before it
 * completes the object, as the engine does. Downloads fetch, with ranged GETs, what the UDP session did
 * not write, then check the object's checksum.
 */

export interface HttpSessionOptions {
  api: SlipstreamApi;
  /** Proxy-aware fetch for the presigned S3 URLs (see http.ts). */
  fetch: typeof fetch;
  /** Part uploads or ranged GETs in flight at most (default 4). */
  concurrency?: number;
  /** Where the UDP session stopped (downloads): what is already on disk. */
  continuation?: DownloadContinuation;
}

const defaultConcurrency = 4;
const progressIntervalMs = 250;
/** A part or range is tried this often before the file fails (network errors, 5xx from S3). */
const maxAttempts = 4;
const retryBaseMs = 500;
const maxPathsPerCall = 100;
/** The rate shown is over about this long a window. */
const rateWindowMs = 3_000;

/** At most `limit` tasks at once; waiters are served in order. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active += 1;
    try {
      return await task();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }
}

/** Pause as a gate every part passes before it starts; parts in flight finish. */
class Gate {
  private opened: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;
  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opened = new Promise((r) => (this.open = r));
  }

  reopen(): void {
    this.closed = false;
    this.open();
  }

  pass(): Promise<void> {
    return this.opened;
  }
}

class RateMeter {
  private readonly samples: { atMs: number; bytes: number }[] = [];
  private total = 0;

  add(bytes: number): void {
    this.total += bytes;
  }

  kbps(): number {
    const now = performance.now();
    this.samples.push({ atMs: now, bytes: this.total });
    while (this.samples.length > 2 && this.samples[0]!.atMs < now - rateWindowMs) this.samples.shift();
    const first = this.samples[0]!;
    const elapsedMs = now - first.atMs;
    return elapsedMs > 0 ? Math.round(((this.total - first.bytes) * 8) / elapsedMs) : 0;
  }
}

async function withRetries<T>(what: string, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries += 1) {
    try {
      return await attempt();
    } catch (error) {
      const status = error instanceof SlipstreamApiError ? error.status : (error as { status?: number }).status;
      const retriable = status === undefined || status >= 500 || status === 429;
      if (signal.aborted || !retriable || tries >= maxAttempts) throw error;
      await new Promise((r) => setTimeout(r, retryBaseMs * 2 ** (tries - 1)));
      if (signal.aborted) throw new Error(`${what}: canceled`);
    }
  }
}

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

async function readExactly(handle: FileHandle, length: number, position: number, localPath: string): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await handle.read(buffer, at, length - at, position + at);
    if (bytesRead === 0) throw new Error(`${localPath} changed size while being sent`);
    at += bytesRead;
  }
  return buffer;
}

export async function runHttpSession(spec: TransferSpec, job: SessionJob, callbacks: SessionCallbacks, options: HttpSessionOptions): Promise<SessionResult> {
  const session = new HttpSession(spec.slipstream.transfer_id, callbacks, options);
  return job.direction === 'upload' ? session.upload(job.files) : session.download(job.paths, job.localRoot, options.continuation);
}

class HttpSession {
  private readonly semaphore: Semaphore;
  private readonly gate = new Gate();
  private readonly meter = new RateMeter();
  private readonly fileErrors: SessionFileError[] = [];
  private bytesDone = 0;
  private filesDone = 0;

  constructor(
    private readonly transferId: string,
    private readonly callbacks: SessionCallbacks,
    private readonly options: HttpSessionOptions,
  ) {
    this.semaphore = new Semaphore(options.concurrency ?? defaultConcurrency);
    callbacks.attach({ pause: () => this.gate.close(), resume: () => this.gate.reopen() });
  }

  private get signal(): AbortSignal {
    return this.callbacks.signal;
  }

  private progressed(bytes: number): void {
    this.bytesDone += bytes;
    this.meter.add(bytes);
  }

  /** Runs `work` per item, `concurrency` at a time; reports progress meanwhile. */
  private async each<T>(items: readonly T[], bytesTotal: number | null, work: (item: T) => Promise<void>): Promise<void> {
    const report = () =>
      this.callbacks.onProgress({ bytesDone: this.bytesDone, bytesTotal, rateKbps: this.meter.kbps(), filesDone: this.filesDone, filesTotal: items.length });
    const timer = setInterval(report, progressIntervalMs);
    try {
      let next = 0;
      const workers = Array.from({ length: Math.min(items.length, this.options.concurrency ?? defaultConcurrency) }, async () => {
        while (next < items.length && !this.signal.aborted) await work(items[next++]!);
      });
      await Promise.all(workers);
    } finally {
      clearInterval(timer);
      report();
    }
  }

  private result(filesTotal: number, error?: { code: string; message: string }): SessionResult {
    if (this.signal.aborted) return { status: 'CANCELED', bytesDone: this.bytesDone, filesDone: this.filesDone, fileErrors: this.fileErrors };
    if (error || this.fileErrors.length > 0 || this.filesDone < filesTotal) {
      return {
        status: 'FAILED',
        bytesDone: this.bytesDone,
        filesDone: this.filesDone,
        fileErrors: this.fileErrors,
        error: error ?? { code: 'FilesFailed', message: `${this.fileErrors.length} file(s) failed over HTTPS` },
      };
    }
    return { status: 'COMPLETED', bytesDone: this.bytesDone, filesDone: this.filesDone, fileErrors: this.fileErrors };
  }

  private fileFailed(path: string, error: unknown): void {
    if (this.signal.aborted) return;
    const e = error as { code?: unknown; message?: string };
    this.fileErrors.push({ path, code: typeof e.code === 'string' ? e.code : 'HttpTransferError', message: e.message ?? String(error) });
  }

  // ── Uploads ─────────────────────────────────────────────────────────────────────────────────────

  async upload(files: readonly UploadFile[]): Promise<SessionResult> {
    this.callbacks.onStatus('RUNNING');
    const bytesTotal = files.reduce((sum, f) => sum + f.size, 0);
    await this.each(files, bytesTotal, (file) => this.uploadFile(file).catch((error: unknown) => this.fileFailed(file.path, error)));
    return this.finish(files.length);
  }

  /** Every file done: the transfer's record is closed as COMPLETED (the service checks the files of an upload). */
  private async finish(filesTotal: number): Promise<SessionResult> {
    if (this.signal.aborted || this.fileErrors.length > 0 || this.filesDone < filesTotal) return this.result(filesTotal);
    try {
      await withRetries('finish', this.signal, () => this.options.api.finishFallbackTransfer(this.transferId, filesTotal));
    } catch (error) {
      return this.result(filesTotal, { code: (error as { code?: string }).code ?? 'FinishFailed', message: (error as Error).message });
    }
    return this.result(filesTotal);
  }

  private async uploadFile(file: UploadFile): Promise<void> {
    const partSize = partSizeFor(file.size);
    const partCount = partCountFor(file.size);
    const handle = await open(file.localPath, 'r');
    try {
      // First pass: the checksums the service needs before it starts the object (metadata) and the
      // MD5s S3 checks each part against. The second pass reads only the parts still missing.
      const sha256: Uint8Array[] = [];
      const md5: string[] = [];
      for (let n = 1; n <= partCount; n += 1) {
        if (this.signal.aborted) return;
        const start = (n - 1) * partSize;
        const bytes = await readExactly(handle, Math.min(partSize, file.size - start), start, file.localPath);
        sha256.push(partDigest(bytes));
        md5.push(createHash('md5').update(bytes).digest('base64'));
      }
      const checksum = compositeChecksum(sha256);
      const api = this.options.api;
      const state = await withRetries('upload', this.signal, () =>
        api.fallbackFile(this.transferId, file.index, { path: file.path, sizeBytes: file.size, sha256: checksum }, this.signal),
      );
      if (state.status === 'committed') {
        this.progressed(file.size);
        this.filesDone += 1;
        return;
      }
      if (state.partSizeBytes !== partSize || state.partCount !== partCount) {
        throw new Error(`the service lays ${file.path} out as ${state.partCount} parts of ${state.partSizeBytes} B, this client as ${partCount} of ${partSize} B`);
      }
      const durable = new Set(state.parts.map((p) => p.partNumber));
      for (const part of state.parts) this.progressed(part.sizeBytes);
      const missing = file.size === 0 ? [] : Array.from({ length: partCount }, (_, i) => i + 1).filter((n) => !durable.has(n));
      for (let i = 0; i < missing.length; i += maxPathsPerCall) {
        const batch = missing.slice(i, i + maxPathsPerCall);
        const signed = await withRetries('sign', this.signal, () =>
          api.signFallbackParts(this.transferId, file.index, batch.map((n) => ({ partNumber: n, md5: md5[n - 1]! })), this.signal),
        );
        await Promise.all(
          signed.parts.map((part) =>
            this.semaphore.run(async () => {
              await this.gate.pass();
              if (this.signal.aborted) return;
              const start = (part.partNumber - 1) * partSize;
              const bytes = await readExactly(handle, Math.min(partSize, file.size - start), start, file.localPath);
              const etag = await withRetries(`part ${part.partNumber}`, this.signal, () => this.putPart(part.url, part.headers, bytes));
              await withRetries('record', this.signal, () =>
                api.recordFallbackPart(this.transferId, file.index, part.partNumber, { etag, sha256: hex(sha256[part.partNumber - 1]!) }, this.signal),
              );
              this.progressed(bytes.length);
            }),
          ),
        );
      }
      if (this.signal.aborted) return;
      await withRetries('complete', this.signal, () => api.completeFallbackFile(this.transferId, file.index, checksum, this.signal));
      this.filesDone += 1;
    } finally {
      await handle.close();
    }
  }

  private async putPart(url: string, headers: Record<string, string>, bytes: Buffer): Promise<string> {
    const response = await this.options.fetch(url, { method: 'PUT', headers, body: new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength), signal: this.signal });
    const text = await response.text();
    if (!response.ok) throw new HttpStatusError(response.status, `storage refused a part: ${response.status} ${text.slice(0, 200)}`);
    const etag = response.headers.get('etag');
    if (!etag) throw new Error('storage accepted a part without an ETag (is the bucket CORS exposing ETag?)');
    return etag;
  }

  // ── Downloads ───────────────────────────────────────────────────────────────────────────────────

  async download(paths: readonly string[], localRoot: string, continuation: DownloadContinuation | undefined): Promise<SessionResult> {
    this.callbacks.onStatus('RUNNING');
    const api = this.options.api;
    // What to fetch: the UDP session's manifest when it got one (those paths, minus the files done),
    // else the paths asked for, expanded by the service.
    const wanted = continuation ? continuation.files.filter((f) => !continuation.done.has(f.index)).map((f) => f.path) : [...paths];
    const listed: FallbackDownloads['files'] = [];
    try {
      for (let i = 0; i < wanted.length; i += maxPathsPerCall) {
        const batch = wanted.slice(i, i + maxPathsPerCall);
        listed.push(...(await withRetries('downloads', this.signal, () => api.fallbackDownloads(this.transferId, batch, this.signal))).files);
      }
    } catch (error) {
      return this.result(Math.max(1, wanted.length), { code: (error as { code?: string }).code ?? 'HttpTransferError', message: (error as Error).message });
    }
    const doneBefore = continuation?.done.size ?? 0;
    this.filesDone = doneBefore;
    if (continuation) {
      for (const file of continuation.files) if (continuation.done.has(file.index)) this.progressed(file.size);
    }
    const filesTotal = doneBefore + listed.length;
    const bytesTotal = (continuation?.files.filter((f) => continuation.done.has(f.index)).reduce((s, f) => s + f.size, 0) ?? 0) + listed.reduce((s, f) => s + f.sizeBytes, 0);
    await this.each(listed, bytesTotal, (file) => this.downloadFile(file, localRoot, continuation).catch((error: unknown) => this.fileFailed(file.path, error)));
    return this.finish(filesTotal);
  }

  private async downloadFile(file: FallbackDownloads['files'][number], localRoot: string, continuation: DownloadContinuation | undefined): Promise<void> {
    const target = localPathFor(localRoot, file.path);
    const partPath = `${target}.part`;
    await mkdir(dirname(target), { recursive: true });
    // Ranges the UDP session already wrote into the .part file (file-relative); none otherwise.
    const have = new RangeSet();
    const earlier = continuation?.files.find((f) => f.path === file.path);
    if (earlier && earlier.size === file.sizeBytes) {
      for (const [start, end] of intersect(continuation!.written, earlier.start, earlier.start + earlier.size)) have.add(start - earlier.start, end - earlier.start);
    }
    const handle = await open(partPath, have.isEmpty ? 'w+' : 'r+').catch(() => open(partPath, 'w+'));
    try {
      this.progressed(have.total());
      const gaps = file.sizeBytes === 0 ? [] : have.gaps(0, file.sizeBytes);
      await Promise.all(
        gaps.map(([start, end]) =>
          this.semaphore.run(async () => {
            await this.gate.pass();
            if (this.signal.aborted) return;
            await withRetries(`range ${start}-${end}`, this.signal, () => this.fetchRange(file.url, handle, start, end));
          }),
        ),
      );
      if (this.signal.aborted) return;
      await this.verify(handle, file);
    } finally {
      await handle.close();
    }
    await rename(partPath, target);
    this.filesDone += 1;
  }

  /** One ranged GET written at its offset; a retry fetches only what the failed attempt did not write. */
  private async fetchRange(url: string, handle: FileHandle, start: number, end: number): Promise<void> {
    const response = await this.options.fetch(url, { headers: { range: `bytes=${start}-${end - 1}` }, signal: this.signal });
    if (response.status !== 206 && !(response.status === 200 && start === 0)) {
      const text = await response.text();
      throw new HttpStatusError(response.status, `storage answered ${response.status} for bytes ${start}-${end - 1}: ${text.slice(0, 200)}`);
    }
    if (!response.body) throw new Error('storage sent no body');
    let at = start;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      const take = Math.min(chunk.length, end - at);
      if (take <= 0) break;
      await handle.write(chunk, 0, take, at);
      at += take;
      this.progressed(take);
    }
    if (at < end) throw new Error(`storage ended the range early at ${at} of ${end}`);
  }

  /** Against the checksum the object was stored with (Slipstream uploads), else its single-part ETag (MD5). */
  private async verify(handle: FileHandle, file: FallbackDownloads['files'][number]): Promise<void> {
    const partSize = partSizeFor(file.sizeBytes);
    const digests: Uint8Array[] = [];
    const md5 = createHash('md5');
    for (let start = 0; start < file.sizeBytes || digests.length === 0; start += partSize) {
      const bytes = await readExactly(handle, Math.min(partSize, file.sizeBytes - start), start, file.path);
      digests.push(partDigest(bytes));
      md5.update(bytes);
    }
    const etag = file.etag?.replace(/"/g, '');
    const problem =
      file.sha256 && compositeChecksum(digests) !== file.sha256
        ? 'its SHA-256 checksum'
        : !file.sha256 && etag && /^[0-9a-f]{32}$/.test(etag) && md5.digest('hex') !== etag
          ? 'its MD5 (ETag)'
          : undefined;
    if (problem) throw Object.assign(new Error(`${file.path}: the bytes received do not match ${problem}`), { code: 'ChecksumMismatch' });
  }
}

/** The parts of `set` inside [start, end). */
function intersect(set: RangeSet, start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  let at = start;
  for (const [gapStart, gapEnd] of set.gaps(start, end)) {
    if (gapStart > at) out.push([at, gapStart]);
    at = gapEnd;
  }
  if (at < end) out.push([at, end]);
  return out;
}
