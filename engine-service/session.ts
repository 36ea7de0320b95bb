import type { Socket } from 'node:dgram';
import type { S3Client } from '@aws-sdk/client-s3';
import { objectKeyProblem } from '../contracts';
import type { BucketGuard } from '../core/bucket-guard';
import { ServiceError } from '../core/errors';
import type { PartRepository } from '../core/state/parts';
import { isActive, type TransferRepository } from '../core/state/transfers';
import type { Ticket } from '../core/token';
import { ConnectionDriver } from '../core/udp-driver';
import { CloseCode, type Connection, type ConnectionEvent } from '../protocol/connection';
import { decodeControl, encodeControl, maxFilesPerManifestMessage, type ControlMessage, type FileEntry } from '../protocol/transfer';
import { resolveDownloadPaths } from '../core/download-paths';
import { DownloadSource } from './download-source';
import { NullSink, type DataSink } from './null-sink';
import { UploadSink } from './upload-sink';
import type { Logger } from './log';

export interface SessionDeps {
  s3: S3Client;
  parts: PartRepository;
  transfers: TransferRepository;
  guard: BucketGuard;
  log: Logger;
  /** Upload buffers per session (the receive window). */
  maxBufferedBytes: number;
  /** Benchmarks only: discard uploaded bytes instead of storing them (see NullSink). */
  nullSink?: boolean;
}

/** Files per transfer, at most: a bound on the manifest a client can make the engine hold. */
const maxFilesPerTransfer = 100_000;
const cancelPollMs = 3_000;
const progressIntervalMs = 1_000;
/** Data handed to the connection per pump turn, at most. */
const pumpBytes = 4 * 1024 * 1024;
/**
 * Flow credit for an upload in the ServerHello: the client sends data with its manifest instead of a
 * round trip later, after `have`, and startup's first round spends it over the handshake's round trip
 * (at most at 168 Mbit/s, see protocol/rate.ts): 8 MiB keeps that rate up to 400 ms paths (2 MiB ran
 * 300 ms paths at 56 Mbit/s, two doublings short of 200). A resumed upload re-sends at most this much of
 * what the engine holds.
 */
export const earlyCreditBytes = 8 * 1024 * 1024;
/** Control messages held while session start runs, at most: a whole manifest's batches and a few more. */
const maxQueuedControl = Math.ceil(maxFilesPerTransfer / maxFilesPerManifestMessage) + 64;

export interface SessionHooks {
  /** The client proved it holds the session keys: the session is no longer a possible replay. */
  onProven(session: EngineSession): void;
  onEnded(session: EngineSession): void;
}

/**
 * One transfer session on the engine: the connection's application. Uploads go into an UploadSink
 * (multipart parts into S3, recorded in the state table); downloads come out of a DownloadSource.
 *
 * A sealed token is a bearer credential, and a replayed ClientHello opens a session like the real one:
 * until the client's first authenticated packet proves it holds the keys the session is *unproven* and
 * touches no storage (no S3 or state-table call) and logs nothing; the server bounds such sessions.
 */
export class EngineSession {
  readonly driver: ConnectionDriver;
  private readonly files: FileEntry[] = [];
  private manifestDone = false;
  private sink: DataSink | undefined;
  private source: DownloadSource | undefined;
  private sendPosition = 0;
  private haveRanges: [number, number][] = [];
  /** Upload data that came before the resume state was known (within `earlyCreditBytes`), in arrival order. */
  private readonly early: { offset: number; bytes: Buffer }[] = [];
  /** The sink takes data: the manifest is complete and the resume state known. */
  private accepting = false;
  private readonly sumsSent = new Set<number>();
  private readonly filesDone = new Set<number>();
  private readonly fileErrors = new Set<number>();
  private ready = false;
  private proven = false;
  private ended = false;
  private completedRecorded = false;
  private cancelTimer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private lastProgress = { atMs: Date.now(), bytes: 0 };
  private readonly startedAtMs = Date.now();
  /** When the last upload data arrived (Date.now() ms). */
  private lastDataAtMs = 0;
  /**
   * The longest a file's `done` came after both its `sum` and the last data before it: what the client
   * waits on storage once everything is sent (the last part's upload, CompleteMultipartUpload, the table
   * writes). Timing from `sum` alone would count the data still on its way.
   */
  private slowestStorageWaitMs = 0;

  constructor(
    readonly ticket: Ticket,
    conn: Connection,
    socket: Socket,
    private readonly deps: SessionDeps,
    private readonly hooks: SessionHooks,
  ) {
    this.driver = new ConnectionDriver(conn, socket, (event) => this.onEvent(event));
  }

  /** Before `authenticated`: no storage was touched, so the session goes without a trace (and without a CLOSE). */
  discard(): void {
    this.ended = true;
    this.driver.stop();
  }

  private onAuthenticated(): void {
    this.proven = true;
    this.hooks.onProven(this);
    this.deps.log.info('session start', { transferId: this.ticket.transferId, direction: this.ticket.direction, remote: this.conn.remoteAddress });
    // A first packet that is a CLOSE (a cancel) still ends the transfer as it says; nothing to start.
    if (!this.conn.isClosed) void this.init();
  }

  private get conn(): Connection {
    return this.driver.conn;
  }

  /** Checks that can only be made now, not when the token was minted: the bucket may have been locked since. */
  private async init(): Promise<void> {
    try {
      await this.deps.guard.assertTransferable(this.ticket.bucket);
      const transfer = await this.deps.transfers.get(this.ticket.transferId);
      if (transfer && !isActive(transfer.status)) {
        throw new ServiceError('TransferNotActive', `transfer ${this.ticket.transferId} has ended (${transfer.status})`);
      }
      await this.deps.transfers.markRunning(this.ticket.transferId, new Date());
      this.ready = true;
      this.cancelTimer = setInterval(() => void this.checkCanceled(), cancelPollMs);
      this.cancelTimer.unref();
      if (this.ticket.direction === 'receive') {
        this.progressTimer = setInterval(() => void this.downloadProgress(), progressIntervalMs);
        this.progressTimer.unref();
      }
      this.processQueued();
    } catch (error) {
      this.refuse(error);
    }
  }

  private readonly queued: ControlMessage[] = [];

  private refuse(error: unknown): void {
    const message = error instanceof ServiceError ? `${error.code}: ${error.message}` : `InternalError: ${String(error)}`;
    this.deps.log.warn('session refused', { transferId: this.ticket.transferId, reason: message });
    this.conn.close(CloseCode.refused, message);
    this.driver.kick();
  }

  /** Uploads report through their sink; a download reports what the client has acknowledged. */
  private async downloadProgress(): Promise<void> {
    const skipped = this.haveRanges.reduce((sum, [s, e]) => sum + (e - s), 0);
    const bytes = skipped + this.conn.stats().dataBytesAcked;
    const nowMs = Date.now();
    const rateKbps = Math.round(((bytes - this.lastProgress.bytes) * 8) / Math.max(1, nowMs - this.lastProgress.atMs));
    this.lastProgress = { atMs: nowMs, bytes };
    await this.deps.transfers.updateProgress(this.ticket.transferId, bytes, rateKbps, new Date(nowMs)).catch((error: unknown) =>
      this.deps.log.warn('progress not recorded', { transferId: this.ticket.transferId, error: String(error) }),
    );
  }

  private async checkCanceled(): Promise<void> {
    const transfer = await this.deps.transfers.get(this.ticket.transferId).catch(() => undefined);
    if (transfer?.status === 'CANCELED' && !this.conn.isClosed) {
      this.conn.close(CloseCode.canceled, 'the transfer was canceled');
      this.driver.kick();
    }
  }

  private send(message: ControlMessage): void {
    this.conn.sendControl(encodeControl(message));
    this.driver.kick();
  }

  private onEvent(event: ConnectionEvent): void {
    switch (event.type) {
      case 'data':
        this.onData(event.offset, event.bytes);
        break;
      case 'control': {
        const message = decodeControl(event.message);
        if (!message) {
          this.conn.close(CloseCode.protocolError, 'unreadable control message');
          return;
        }
        if (this.queued.length === 0 && this.canHandle(message)) this.onControl(message);
        else if (this.queued.length < maxQueuedControl) this.queued.push(message);
        else this.conn.close(CloseCode.protocolError, `more than ${maxQueuedControl} control messages before the session started`);
        break;
      }
      case 'authenticated':
        this.onAuthenticated();
        break;
      case 'writable':
        this.pump();
        break;
      case 'closed':
        void this.end(event.code, event.reason, event.byPeer);
        break;
      default:
        break;
    }
  }

  /**
   * Messages wait, in order, until session start ran; an upload's messages after the manifest also wait
   * for the resume state: a `sum` may come with the early data, before the sink knows what is durable.
   */
  private canHandle(message: ControlMessage): boolean {
    return this.ready && (this.ticket.direction !== 'send' || message.t === 'files' || this.accepting);
  }

  private processQueued(): void {
    while (this.queued.length > 0 && this.canHandle(this.queued[0]!) && !this.conn.isClosed) this.onControl(this.queued.shift()!);
  }

  private onControl(message: ControlMessage): void {
    const upload = this.ticket.direction === 'send';
    switch (message.t) {
      case 'files':
        if (!upload) return this.conn.close(CloseCode.protocolError, 'a download receives the manifest, it does not send one');
        return this.onManifest(message.files, message.final);
      case 'get':
        if (upload) return this.conn.close(CloseCode.protocolError, 'get is for downloads');
        return void this.onGet(message.paths, message.final);
      case 'have':
        if (upload) return this.conn.close(CloseCode.protocolError, 'have is sent by the receiver');
        this.haveRanges = message.ranges;
        this.source?.skip(message.ranges);
        return this.pump();
      case 'sum':
        if (!upload) return;
        return void this.commit(message.index, message.sha256);
      case 'done':
        this.filesDone.add(message.index);
        if (this.transferComplete()) void this.recordCompletedEarly();
        return;
      case 'file-error':
        this.fileErrors.add(message.index);
        this.deps.log.warn('client reports a file error', { transferId: this.ticket.transferId, ...message });
        return;
      case 'pause':
        this.conn.pauseSending(true);
        return;
      case 'resume':
        this.conn.pauseSending(false);
        this.driver.kick();
        return;
    }
  }

  private checkPath(path: string): boolean {
    const problem = objectKeyProblem(this.ticket.keyPrefix + path) ?? objectKeyProblem(path);
    if (problem) {
      this.conn.close(CloseCode.refused, `InvalidObjectKey: "${path.slice(0, 200)}" is not a usable key below ${this.ticket.keyPrefix || 'the bucket'}: it ${problem}`);
      this.driver.kick();
      return false;
    }
    return true;
  }

  private onManifest(files: readonly FileEntry[], final: boolean): void {
    if (this.manifestDone) return this.conn.close(CloseCode.protocolError, 'manifest after the final batch');
    if (this.files.length + files.length > maxFilesPerTransfer) {
      return this.conn.close(CloseCode.refused, `a transfer holds at most ${maxFilesPerTransfer} files`);
    }
    for (const file of files) {
      if (file.index !== this.files.length) return this.conn.close(CloseCode.protocolError, 'manifest out of order');
      if (!this.checkPath(file.path)) return;
      this.files.push(file);
    }
    this.sink ??= this.deps.nullSink ? new NullSink(this.deps.maxBufferedBytes) : new UploadSink({
      s3: this.deps.s3,
      parts: this.deps.parts,
      transfers: this.deps.transfers,
      bucket: this.ticket.bucket,
      keyPrefix: this.ticket.keyPrefix,
      transferId: this.ticket.transferId,
      maxBufferedBytes: this.deps.maxBufferedBytes,
      onFileError: (index, error) => this.fileFailed(index, error),
      onSettled: () => this.grant(),
    });
    this.sink.addFiles(files);
    if (final) {
      this.manifestDone = true;
      void this.startUpload();
    }
  }

  private async startUpload(): Promise<void> {
    try {
      const ranges = await this.sink!.resumeState();
      this.send({ t: 'have', ranges });
      this.accepting = true;
      for (const { offset, bytes } of this.early.splice(0)) if (!this.store(offset, bytes)) return;
      this.grant();
      this.processQueued();
    } catch (error) {
      this.refuse(error);
    }
  }

  private grant(): void {
    // Not before the resume state: until then the ServerHello's credit bounds what the session holds.
    if (!this.accepting || this.conn.isClosed) return;
    this.conn.setMaxData(this.sink!.receiveLimit());
    this.driver.kick();
  }

  private onData(offset: number, bytes: Buffer): void {
    this.lastDataAtMs = Date.now();
    // Held until the sink knows what is durable: the connection delivers each byte once and none past
    // the credit, which stays at the ServerHello's until then, so this holds at most earlyCreditBytes.
    if (!this.accepting) {
      this.early.push({ offset, bytes });
      return;
    }
    if (this.store(offset, bytes)) this.grant();
  }

  /** Into the sink; false when that ended the session. */
  private store(offset: number, bytes: Buffer): boolean {
    try {
      this.sink!.write(offset, bytes);
      return true;
    } catch (error) {
      // A client that sends past its own manifest ends its session, never the engine.
      const flow = (error as Error).name === 'FlowControlError';
      this.conn.close(flow ? CloseCode.flowControlError : CloseCode.internalError, (error as Error).message);
      this.driver.kick();
      return false;
    }
  }

  private async commit(index: number, sha256: string): Promise<void> {
    try {
      const sumAtMs = Date.now();
      await this.sink!.commitFile(index, sha256);
      this.slowestStorageWaitMs = Math.max(this.slowestStorageWaitMs, Date.now() - Math.max(sumAtMs, this.lastDataAtMs));
      this.filesDone.add(index);
      // Recorded before the client hears its last `done`: it may report success and exit at once.
      if (this.transferComplete()) await this.recordCompletedEarly();
      this.send({ t: 'done', index });
      this.grant();
    } catch (error) {
      this.fileFailed(index, error);
    }
  }

  private fileFailed(index: number, error: unknown): void {
    if (this.fileErrors.has(index) || this.conn.isClosed) return;
    this.fileErrors.add(index);
    const err = error as { name?: string; message?: string };
    const code = err.name === 'ChecksumMismatchError' ? 'ChecksumMismatch' : err.name === 'NoSuchPathError' ? 'NotFound' : 'StorageError';
    this.deps.log.warn('file failed', { transferId: this.ticket.transferId, index, code, error: err.message });
    this.send({ t: 'file-error', index, code, message: err.message ?? String(error) });
  }

  private async onGet(paths: readonly string[], final: boolean): Promise<void> {
    if (!final) return this.conn.close(CloseCode.refused, 'send all download paths in one get message');
    for (const path of paths) if (!this.checkPath(path.replace(/\/+$/, '') || 'x')) return;
    try {
      const resolved = await resolveDownloadPaths(this.deps.s3, this.ticket.bucket, this.ticket.keyPrefix, paths, { maxFiles: maxFilesPerTransfer });
      for (let i = 0; i < resolved.length; i += maxFilesPerManifestMessage) {
        const batch = resolved.slice(i, i + maxFilesPerManifestMessage).map(({ index, path, size }) => ({ index, path, size }));
        this.send({ t: 'files', files: batch, final: i + maxFilesPerManifestMessage >= resolved.length });
      }
      this.files.push(...resolved.map(({ index, path, size }) => ({ index, path, size })));
      this.source = new DownloadSource({
        s3: this.deps.s3,
        bucket: this.ticket.bucket,
        files: resolved.map((f) => ({ index: f.index, key: f.key, size: f.size })),
        onReadable: () => this.pump(),
        onFileError: (index, error) => this.fileFailed(index, error),
      });
      if (this.haveRanges.length > 0) this.source.skip(this.haveRanges);
    } catch (error) {
      const message = (error as Error).message;
      const code = (error as { name?: string }).name === 'NoSuchPathError' ? 'NotFound' : 'InternalError';
      this.conn.close(CloseCode.refused, `${code}: ${message}`);
      this.driver.kick();
    }
  }

  /** Download: hands the connection as much as it takes, skipping what the client already holds. */
  private pump(): void {
    const source = this.source;
    if (!source || this.conn.isClosed) return;
    const total = source.layout.totalBytes;
    let budget = pumpBytes;
    while (this.sendPosition < total && budget > 0) {
      const skipTo = this.haveRanges.find(([s, e]) => s <= this.sendPosition && this.sendPosition < e);
      if (skipTo) {
        this.sendPosition = skipTo[1];
        continue;
      }
      const room = Math.min(this.conn.writableBytes(), budget);
      if (room <= 0) break;
      const bytes = source.read(this.sendPosition, room);
      if (!bytes || bytes.length === 0) {
        const index = source.layout.fileAt(this.sendPosition);
        if (index !== undefined && source.fileError(index)) {
          // A failed file's bytes never come: move past it.
          this.sendPosition = source.layout.start(index) + source.layout.files[index]!.size;
          continue;
        }
        break;
      }
      const taken = this.conn.write(this.sendPosition, bytes);
      source.release(this.sendPosition, this.sendPosition + taken);
      this.sendPosition += taken;
      budget -= taken;
      if (taken < bytes.length) break;
    }
    if (this.sendPosition >= total) this.conn.endWrites();
    this.sendSums();
    this.driver.kick();
  }

  private sendSums(): void {
    const source = this.source!;
    for (const file of this.files) {
      if (this.sumsSent.has(file.index) || this.fileErrors.has(file.index)) continue;
      const checksum = source.checksum(file.index);
      if (!checksum) continue;
      this.sumsSent.add(file.index);
      this.send({ t: 'sum', index: file.index, sha256: checksum });
    }
  }

  private allFilesDone(): boolean {
    return this.files.length > 0 ? this.files.every((f) => this.filesDone.has(f.index)) : this.manifestDone || this.source !== undefined;
  }

  /** Every file of the whole manifest committed (or, downloading, verified by the client), none failed. */
  private transferComplete(): boolean {
    const manifestKnown = this.ticket.direction === 'send' ? this.manifestDone : this.source !== undefined;
    return manifestKnown && this.fileErrors.size === 0 && this.allFilesDone();
  }

  /** COMPLETED in the state table, once: the session end does not write it again after the early record. */
  private async recordCompleted(): Promise<void> {
    if (this.completedRecorded) return;
    await this.sink?.flushProgress();
    await this.deps.transfers.finish(this.ticket.transferId, 'COMPLETED', new Date(), { bytesTransferred: this.sink?.bytesTransferred ?? this.source?.layout.totalBytes ?? 0 });
    this.completedRecorded = true;
  }

  /** Before the client's CLOSE: a failure is logged and tried again when the session ends. */
  private async recordCompletedEarly(): Promise<void> {
    await this.recordCompleted().catch((error: unknown) => this.deps.log.warn('could not record the transfer completed yet', { transferId: this.ticket.transferId, error: String(error) }));
  }

  private async end(code: number, reason: string, byPeer: boolean): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (!this.proven) {
      // Never proven (closed by the engine before the client spoke): nothing was stored, nothing to record.
      this.hooks.onEnded(this);
      return;
    }
    if (this.cancelTimer) clearInterval(this.cancelTimer);
    if (this.progressTimer) clearInterval(this.progressTimer);
    const transferId = this.ticket.transferId;
    try {
      if (code === CloseCode.done && byPeer && this.transferComplete()) {
        await this.recordCompleted();
      } else if (code === CloseCode.canceled) {
        await this.sink?.cancel();
        await this.deps.transfers.finish(transferId, 'CANCELED', new Date());
      } else if (code === CloseCode.done && byPeer && this.fileErrors.size > 0) {
        await this.sink?.close();
        await this.deps.transfers.finish(transferId, 'FAILED', new Date(), { error: { code: 'FilesFailed', message: `${this.fileErrors.size} file(s) failed` } });
      } else {
        // Lost, timed out or refused: durable parts stay for a resume; the record stays active.
        await this.sink?.flushProgress().catch(() => undefined);
        await this.sink?.close();
      }
    } catch (error) {
      this.deps.log.error('session end', { transferId, error: String(error) });
    }
    this.source?.close();
    this.deps.log.info('session end', {
      transferId,
      code,
      reason,
      byPeer,
      durationMs: Date.now() - this.startedAtMs,
      slowestStorageWaitMs: this.slowestStorageWaitMs,
      ...this.conn.stats(),
    });
    this.hooks.onEnded(this);
  }

  /** Engine shutdown: stop taking data; a client resumes on another engine from the recorded parts. */
  shutdown(): void {
    if (!this.conn.isClosed) {
      this.conn.close(CloseCode.shuttingDown, 'the engine is shutting down; retry to resume on another engine');
      this.driver.kick();
    }
  }
}
