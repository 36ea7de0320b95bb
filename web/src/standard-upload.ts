import { ApiError, type Api, type CreatedUpload } from './api';
import { describeError, isTransient, StorageError } from './errors';
import { runPool, sleep } from './pool';
import { ResumableTransfer } from './resumable';
import type { TransferStore } from './transfers';

/** A file to upload and the object key it becomes. */
export interface UploadItem {
  file: File;
  key: string;
}

/**
 * Files uploading at once in one transfer (a browser opens 6 connections per host over HTTP/1.1), and
 * parts of one file in flight.
 */
export const fileConcurrency = 6;
export const partConcurrency = 4;
/** Part URLs asked for in one call; they stay valid an hour, so a batch must be sent well within it. */
const signBatch = 20;
/** A part that fails for a passing reason is tried again after these waits (ms), then the transfer pauses. */
const retryDelaysMs = [1000, 3000, 9000];

interface FileState {
  readonly item: UploadItem;
  upload: CreatedUpload | null;
  /** Parts S3 holds, by part number: never sent again. */
  readonly done: Map<number, { etag: string; sizeBytes: number }>;
  /** Parts being sent: bytes sent so far (lost if the part is interrupted). */
  readonly inflight: Map<number, number>;
  completed: boolean;
}

const partSize = (upload: CreatedUpload, partNumber: number) =>
  partNumber < upload.partCount ? upload.partSizeBytes : upload.sizeBytes - upload.partSizeBytes * (upload.partCount - 1);

/**
 * PUTs one part straight to S3 through its presigned URL. XMLHttpRequest, not fetch, because only it
 * reports upload progress. The body is a slice of the File: the browser reads it from disk as it sends.
 */
function putPart(url: string, body: Blob, signal: AbortSignal, onProgress: (sentBytes: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const xhr = new XMLHttpRequest();
    const onAbort = () => xhr.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = () => signal.removeEventListener('abort', onAbort);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      settle();
      const etag = xhr.getResponseHeader('etag');
      if (xhr.status >= 200 && xhr.status < 300 && etag) resolve(etag);
      else if (xhr.status >= 200 && xhr.status < 300) reject(new StorageError(xhr.status, "The storage service accepted a part but did not show its ETag: the bucket's CORS must expose ETag."));
      else if (xhr.status === 403) reject(new StorageError(403, 'The storage service refused the upload (the signed link expired or the clock is off).'));
      else reject(new StorageError(xhr.status, `The storage service refused a part (HTTP ${xhr.status}).`));
    };
    xhr.onerror = () => {
      settle();
      reject(new StorageError(0, 'The storage service could not be reached (network error, or the bucket does not allow this page in its CORS).'));
    };
    xhr.onabort = () => {
      settle();
      reject(signal.reason);
    };
    xhr.open('PUT', url);
    xhr.send(body);
  });
}

/**
 * A Standard upload: each file is an HTTP-fallback multipart upload (`/v1/fallback/uploads`) whose
 * parts go from the browser straight to S3. Pause aborts the parts in flight (S3 keeps none of an
 * interrupted part); resume lists the parts S3 already holds (`GET …/parts`) and sends only the others,
 * so a part S3 has is never sent twice. Cancel aborts every unfinished multipart upload.
 */
export class StandardUpload extends ResumableTransfer {
  readonly id: string;
  private readonly files: FileState[];
  private filesDone = 0;
  private ticker: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly api: Api,
    store: TransferStore,
    private readonly bucket: string,
    items: readonly UploadItem[],
    view: { name: string; detail: string },
  ) {
    super(store);
    this.files = items.map((item) => ({ item, upload: null, done: new Map(), inflight: new Map(), completed: false }));
    const bytesTotal = items.reduce((sum, i) => sum + i.file.size, 0);
    this.id = store.add({ ...view, direction: 'upload', transport: 'standard', state: 'queued', bytesTotal, filesTotal: items.length }, this);
    void this.run();
  }

  async cancel(): Promise<void> {
    if (!this.stop('canceled')) return;
    const unfinished = this.files.filter((f) => f.upload && !f.completed);
    const results = await Promise.allSettled(unfinished.map((f) => this.api.abortUpload(f.upload!.transferId)));
    const failed = results.filter((r) => r.status === 'rejected').length;
    const kept = this.files.filter((f) => f.completed).length;
    const notes = [
      kept > 0 ? `${kept} file${kept === 1 ? ' was' : 's were'} already stored and kept.` : '',
      failed > 0 ? `${failed} unfinished upload${failed === 1 ? '' : 's'} could not be removed now; the bucket's lifecycle rule removes them within days.` : '',
    ].filter(Boolean);
    this.stopTicker();
    this.store.update(this.id, { state: 'canceled', rateKbps: 0, bytesDone: this.confirmedBytes(), message: notes.join(' ') || null });
  }

  private async run(): Promise<void> {
    this.store.update(this.id, { state: 'running' });
    this.ticker = setInterval(() => this.report(), 1000);
    const outcome = await this.attempts((signal) =>
      runPool(
        this.files.filter((f) => !f.completed),
        fileConcurrency,
        (file) => this.runFile(file, signal),
      ),
    );
    if (outcome.state === 'failed') await this.fail(outcome.error);
    if (outcome.state !== 'completed') return;
    this.stopTicker();
    this.store.update(this.id, { state: 'completed', bytesDone: this.confirmedBytes(), filesDone: this.filesDone, rateKbps: 0 });
  }

  private async runFile(file: FileState, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    const { item } = file;
    if (!file.upload) {
      // Not aborted mid-call: a create the service finished must be known, or its upload would be orphaned.
      file.upload = await this.api.createUpload({ bucket: this.bucket, key: item.key, sizeBytes: item.file.size, ...(item.file.type ? { contentType: item.file.type } : {}) }, new AbortController().signal);
      // Canceled while it was being created: cancel() could not see this one, so it goes here.
      if (this.canceled) await this.api.abortUpload(file.upload.transferId).catch(() => undefined);
      if (signal.aborted) throw signal.reason;
    } else {
      // Resuming: S3 is the truth about which parts it holds.
      const { parts } = await this.api.listParts(file.upload.transferId, signal);
      file.done.clear();
      for (const part of parts) {
        if (part.partNumber <= file.upload.partCount && part.sizeBytes === partSize(file.upload, part.partNumber)) {
          file.done.set(part.partNumber, { etag: part.etag, sizeBytes: part.sizeBytes });
        }
      }
    }
    const upload = file.upload;
    const remaining = Array.from({ length: upload.partCount }, (_, i) => i + 1).filter((n) => !file.done.has(n));
    for (let i = 0; i < remaining.length; i += signBatch) {
      const batch = remaining.slice(i, i + signBatch);
      const signed = await this.api.signParts(upload.transferId, batch, signal);
      const urls = new Map(signed.parts.map((p) => [p.partNumber, p.url]));
      await runPool(batch, partConcurrency, (partNumber) => this.sendPart(file, upload, partNumber, urls.get(partNumber)!, signal));
    }
    if (signal.aborted) throw signal.reason;
    const parts = [...file.done.entries()].sort(([a], [b]) => a - b).map(([partNumber, p]) => ({ partNumber, etag: p.etag }));
    await this.api.completeUpload(upload.transferId, parts, new AbortController().signal);
    file.completed = true;
    this.filesDone++;
    this.report();
  }

  private async sendPart(file: FileState, upload: CreatedUpload, partNumber: number, url: string, signal: AbortSignal): Promise<void> {
    const start = (partNumber - 1) * upload.partSizeBytes;
    const body = file.item.file.slice(start, start + partSize(upload, partNumber));
    let signedUrl = url;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw signal.reason;
      try {
        file.inflight.set(partNumber, 0);
        const etag = await putPart(signedUrl, body, signal, (sent) => {
          file.inflight.set(partNumber, sent);
          this.report();
        });
        file.done.set(partNumber, { etag, sizeBytes: body.size });
        return;
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const expired = error instanceof StorageError && error.status === 403 && attempt === 0;
        if (!expired && (!isTransient(error) || attempt >= retryDelaysMs.length)) throw error;
        if (expired) signedUrl = (await this.api.signParts(upload.transferId, [partNumber], signal)).parts[0]!.url;
        else await sleep(retryDelaysMs[attempt]!, signal);
      } finally {
        file.inflight.delete(partNumber);
      }
    }
  }

  private confirmedBytes(): number {
    let bytes = 0;
    for (const file of this.files) {
      if (file.completed) bytes += file.item.file.size;
      else for (const part of file.done.values()) bytes += part.sizeBytes;
    }
    return bytes;
  }

  private report(): void {
    if (this.paused || this.canceled) return;
    let bytesDone = this.confirmedBytes();
    for (const file of this.files) for (const sent of file.inflight.values()) bytesDone += sent;
    this.store.update(this.id, { bytesDone, filesDone: this.filesDone, rateKbps: this.meter.sample(bytesDone) });
  }

  private async fail(error: unknown): Promise<void> {
    this.stop('failed');
    this.stopTicker();
    // Nothing can continue these uploads any more: remove their parts from S3 now.
    await Promise.allSettled(this.files.filter((f) => f.upload && !f.completed).map((f) => this.api.abortUpload(f.upload!.transferId)));
    const message = error instanceof ApiError && error.code === 'BucketImmutable' ? describeError(error) : `Upload failed: ${describeError(error)}`;
    this.store.update(this.id, { state: 'failed', rateKbps: 0, bytesDone: this.confirmedBytes(), filesDone: this.filesDone, message });
  }

  private stopTicker(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
  }
}
