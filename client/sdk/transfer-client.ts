import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  activeStatuses,
  maxPathsPerRequest,
  objectKeyProblem,
  protocolVersion,
  type RatePolicy,
  type TransferRequest,
  type TransferSpec,
  type TransferStatus,
} from '../../contracts';
import { SlipstreamApi, defaultRequestTimeoutMs } from './api';
import { requireConfig, resolveConfig, type ResolvedConfig } from './config';
import { SlipstreamApiError, SlipstreamInputError } from './errors';
import { expandUploadPaths, parseS3Url, type LocalFile, type SkippedEntry } from './files';
import { TransferJournal, journalKey, type JournalKeyInput } from './journal';
import { BoundedAsyncQueue } from './queue';
import { runHttpSession, type HttpSessionOptions } from './fallback';
import { createHttpFetch, proxySettingsFromEnv } from './http';
import { runUdpSession } from './session';
import type { SessionCallbacks, SessionFileError, SessionHandles, SessionJob, SessionResult, SessionRunner } from './session-types';

export interface TransferClientOptions {
  endpoint?: string;
  apiKey?: string;
  /** Runs one UDP session; defaults to `runUdpSession` from `./session`. */
  sessionRunner?: SessionRunner;
  requestTimeoutMs?: number;
  /** The resume journal; `false` turns it off. Defaults to one under `~/.cache/slipstream`. */
  journal?: TransferJournal | false;
  /** Config resolution inputs (tests): environment and working directory. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** For everything over HTTP (API and presigned URLs); defaults to one that honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY. */
  fetch?: typeof fetch;
}

export interface TransferOptions {
  targetRateKbps?: number;
  minRateKbps?: number;
  ratePolicy?: RatePolicy;
  /** UDP payload size this client sends (1200..9000; default 1400). */
  datagramBytes?: number;
  /** Files per upload; beyond it the upload is refused (default 1,000,000). */
  maxFiles?: number;
  /**
   * HTTPS fallback asked of the service (Aspera's `http_fallback`): `true` continues over HTTPS when UDP
   * is blocked or goes silent, `'force'` uses HTTPS only, `false` fails instead. Default: the bucket's setting.
   */
  httpFallback?: boolean | 'force';
  /** No handshake answer within this long: UDP is blocked (default 5 s with fallback on, switching to HTTPS; else 10 s). */
  udpHandshakeTimeoutMs?: number;
  /** Nothing heard from the engine for this long mid-transfer: UDP is lost (default 10 s with fallback on; else 30 s). */
  udpSilenceTimeoutMs?: number;
  /** HTTPS path: parts or ranges in flight at most (default 4). */
  httpConcurrency?: number;
}

/** How fast a blocked or dead UDP path hands over to HTTPS when fallback is on (README "When UDP is blocked"). */
export const defaultFallbackHandshakeTimeoutMs = 5_000;
export const defaultFallbackSilenceTimeoutMs = 10_000;

export type TransportName = 'udp' | 'http';

export interface TransportChange {
  transport: TransportName;
  reason: string;
  at: string;
}

export interface TransferProgress {
  bytesDone: number;
  bytesTotal: number | null;
  rateKbps: number;
  filesDone: number;
  filesTotal: number | null;
  /** The transport moving the bytes now. */
  transport: TransportName;
}

export type FinalStatus = 'COMPLETED' | 'FAILED' | 'CANCELED';

export interface TransferResult extends TransferProgress {
  id: string;
  transferIds: string[];
  status: FinalStatus;
  elapsedMs: number;
  /** Specs came from the resume journal: this run continued an earlier one. */
  resumed: boolean;
  fileErrors: SessionFileError[];
  error?: { code: string; message: string };
  /** Switches of transport during the run (UDP → HTTPS), oldest first. */
  transportChanges: TransportChange[];
}

type TransferEvents = { progress: [TransferProgress]; status: [TransferStatus]; transport: [TransportChange] };

/** Status updates buffered per iterator; older ones are dropped first (the latest state matters). */
export const statusQueueCapacity = 32;
/** Setup bodies stay below the API's 4 MiB limit with room for the envelope. */
const maxSetupBodyBytes = 3 * 1024 * 1024;
const terminalStatuses: readonly TransferStatus[] = ['COMPLETED', 'FAILED', 'CANCELED'];

export const isTerminal = (status: TransferStatus): status is FinalStatus => terminalStatuses.includes(status);

/** One spec and the session job it runs; an upload of more than 10,000 files has several. */
interface Chunk {
  spec: TransferSpec;
  job: SessionJob;
  bytesTotal: number | null;
  filesTotal: number | null;
  /** Finished in an earlier run (journal): skipped. */
  completed: boolean;
}

/**
 * Splits a sorted file list into setup requests: at most `maxPathsPerRequest` paths and
 * `maxSetupBodyBytes` of JSON each. Deterministic, so a re-run gets the same chunks (journal).
 */
export function chunkFiles(files: readonly LocalFile[], maxPaths = maxPathsPerRequest, maxBodyBytes = maxSetupBodyBytes): LocalFile[][] {
  const chunks: LocalFile[][] = [];
  let current: LocalFile[] = [];
  let bytes = 0;
  for (const file of files) {
    const entryBytes = Buffer.byteLength(JSON.stringify(pathEntry(file))) + 1;
    if (current.length > 0 && (current.length >= maxPaths || bytes + entryBytes > maxBodyBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += entryBytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Source and destination are both the relative key: local absolute paths are not sent to the API. */
const pathEntry = (file: LocalFile) => ({ source: file.path, destination: file.path, size: file.sizeBytes });

const datagram = (options: TransferOptions) => (options.datagramBytes !== undefined ? { datagramBytes: options.datagramBytes } : {});

function rateFields(options: TransferOptions): Pick<TransferRequest, 'target_rate_kbps' | 'min_rate_kbps' | 'rate_policy' | 'http_fallback'> {
  return {
    ...(options.targetRateKbps !== undefined ? { target_rate_kbps: options.targetRateKbps } : {}),
    ...(options.minRateKbps !== undefined ? { min_rate_kbps: options.minRateKbps } : {}),
    ...(options.ratePolicy !== undefined ? { rate_policy: options.ratePolicy } : {}),
    ...(options.httpFallback !== undefined ? { http_fallback: options.httpFallback === 'force' ? 'force' : options.httpFallback ? 'true' : 'false' } : {}),
  };
}

/** Journal entries keep specs without their path lists (they can be large); the request has them. */
const withoutPaths = (spec: TransferSpec): TransferSpec => ({ ...spec, paths: [] });

export class TransferClient {
  readonly config: ResolvedConfig & { endpoint: string; apiKey: string };
  readonly api: SlipstreamApi;
  private readonly runner: SessionRunner;
  private readonly journal: TransferJournal | undefined;
  private readonly httpFetch: typeof fetch;

  constructor(options: TransferClientOptions = {}) {
    this.config = requireConfig(
      resolveConfig({
        endpoint: options.endpoint,
        apiKey: options.apiKey,
        ...(options.env ? { env: options.env } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
      }),
    );
    this.httpFetch = options.fetch ?? createHttpFetch(proxySettingsFromEnv(options.env ?? process.env));
    this.api = new SlipstreamApi({
      endpoint: this.config.endpoint,
      apiKey: this.config.apiKey,
      timeoutMs: options.requestTimeoutMs ?? defaultRequestTimeoutMs,
      fetch: this.httpFetch,
    });
    this.runner = options.sessionRunner ?? runUdpSession;
    this.journal = options.journal === false ? undefined : (options.journal ?? new TransferJournal());
  }

  /**
   * Uploads files and folders to `s3://bucket/prefix` (a folder `./x` lands under `prefix/x/…`).
   * Resolves once the transfer is set up (its id is known); the session starts right after.
   */
  async upload(localPaths: string | readonly string[], destination: string, options: TransferOptions = {}): Promise<Transfer> {
    const target = parseS3Url(destination);
    const prefix = target.key;
    const { files, skipped, totalBytes } = await expandUploadPaths(typeof localPaths === 'string' ? [localPaths] : localPaths, {
      ...(options.maxFiles !== undefined ? { maxFiles: options.maxFiles } : {}),
    });
    if (files.length === 0) throw new SlipstreamInputError('nothing to upload: the folders named hold no regular files');
    for (const file of files) {
      const key = prefix === '' ? file.path : `${prefix}/${file.path}`;
      const problem = objectKeyProblem(key);
      if (problem) throw new SlipstreamInputError(`${file.localPath} cannot be stored as "${key.slice(0, 200)}": the object key ${problem}`);
    }
    await this.preflight(target.bucket);

    const groups = chunkFiles(files);
    const requests: TransferRequest[] = groups.map((group) => ({
      paths: group.map(pathEntry),
      ...(prefix !== '' ? { destination_root: prefix } : {}),
      ...rateFields(options),
    }));
    const identity: JournalKeyInput = { direction: 'upload', endpoint: this.config.endpoint, bucket: target.bucket, prefix, files };
    const { specs, completed, resumed, key } = await this.specsFor(identity, requests, (request) => this.api.uploadSetup(target.bucket, request));
    const chunks: Chunk[] = groups.map((group, i) => ({
      spec: specs[i]!,
      // Each spec is its own transfer whose manifest counts from 0.
      job: { direction: 'upload', files: group.map((f, index) => ({ index, path: f.path, size: f.sizeBytes, localPath: f.localPath })), ...datagram(options) },
      bytesTotal: group.reduce((sum, f) => sum + f.sizeBytes, 0),
      filesTotal: group.length,
      completed: completed[i]!,
    }));
    return new Transfer({ ...this.transferInit(options), chunks, journalKey: key, resumed, bytesTotal: totalBytes, filesTotal: files.length, skipped });
  }

  /**
   * Downloads an object, or everything under a prefix, into `localDir`: `s3://b/photos/2026` lands as
   * `localDir/2026` (a file) or `localDir/2026/…` (a prefix), like a folder upload in reverse.
   */
  async download(source: string, localDir: string, options: TransferOptions = {}): Promise<Transfer> {
    const location = parseS3Url(source);
    if (location.key === '') {
      throw new SlipstreamInputError(`name a key or prefix to download, e.g. s3://${location.bucket}/folder/ (the API has no whole-bucket download)`);
    }
    const slash = location.key.lastIndexOf('/');
    const sourceRoot = slash < 0 ? '' : location.key.slice(0, slash);
    // A trailing "/" is kept so the engine knows the user asked for a prefix.
    const path = location.key.slice(slash + 1) + (location.isPrefix ? '/' : '');
    const localRoot = resolve(localDir);
    await mkdir(localRoot, { recursive: true });
    await this.preflight(location.bucket);

    const request: TransferRequest = { paths: [{ source: path }], ...(sourceRoot !== '' ? { source_root: sourceRoot } : {}), ...rateFields(options) };
    const identity: JournalKeyInput = { direction: 'download', endpoint: this.config.endpoint, bucket: location.bucket, prefix: sourceRoot, paths: [path], localRoot };
    const { specs, completed, resumed, key } = await this.specsFor(identity, [request], (r) => this.api.downloadSetup(location.bucket, r));
    const chunk: Chunk = { spec: specs[0]!, job: { direction: 'download', paths: [path], localRoot, ...datagram(options) }, bytesTotal: null, filesTotal: null, completed: completed[0]! };
    return new Transfer({ ...this.transferInit(options), chunks: [chunk], journalKey: key, resumed, bytesTotal: null, filesTotal: null, skipped: [] });
  }

  private transferInit(options: TransferOptions): Pick<TransferInit, 'api' | 'runner' | 'journal' | 'http' | 'udpTimeouts'> {
    return {
      api: this.api,
      runner: this.runner,
      journal: this.journal,
      http: { api: this.api, fetch: this.httpFetch, ...(options.httpConcurrency !== undefined ? { concurrency: options.httpConcurrency } : {}) },
      udpTimeouts: {
        ...(options.udpHandshakeTimeoutMs !== undefined ? { handshakeMs: options.udpHandshakeTimeoutMs } : {}),
        ...(options.udpSilenceTimeoutMs !== undefined ? { silenceMs: options.udpSilenceTimeoutMs } : {}),
      },
    };
  }

  /** Connection info: auth, bucket existence and immutability are checked before anything is created. */
  private async preflight(bucket: string): Promise<void> {
    const info = await this.api.connectionInfo(bucket);
    if (info.protocolVersion !== protocolVersion) {
      throw new SlipstreamApiError(200, 'UnsupportedProtocol', `the service speaks transfer protocol ${info.protocolVersion}; this client speaks ${protocolVersion}`);
    }
  }

  /**
   * Specs for each request: from the journal when an earlier run's transfer is still active (same id,
   * same token), skipped when it completed, and from a new setup call otherwise.
   */
  private async specsFor(
    identity: JournalKeyInput,
    requests: readonly TransferRequest[],
    setup: (request: TransferRequest) => Promise<TransferSpec>,
  ): Promise<{ specs: TransferSpec[]; completed: boolean[]; resumed: boolean; key: string }> {
    const key = journalKey(identity);
    const entry = await this.journal?.get(key);
    const stored = entry && entry.specs.length === requests.length ? entry.specs : undefined;
    const specs: TransferSpec[] = [];
    const completed: boolean[] = [];
    let resumed = false;
    for (const [i, request] of requests.entries()) {
      const old = stored?.[i];
      if (old) {
        const state = await this.api.getTransfer(old.slipstream.transfer_id).then(
          (t) => t.status,
          (error: unknown) => {
            if (error instanceof SlipstreamApiError && error.status === 404) return undefined;
            throw error;
          },
        );
        if (state !== undefined && (activeStatuses.includes(state) || state === 'COMPLETED')) {
          specs.push({ ...old, paths: request.paths });
          completed.push(state === 'COMPLETED');
          resumed = true;
          continue;
        }
      }
      specs.push(await setup(request));
      completed.push(false);
    }
    await this.journal?.put(key, specs.map(withoutPaths));
    return { specs, completed, resumed, key };
  }
}

interface TransferInit {
  api: SlipstreamApi;
  runner: SessionRunner;
  /** The HTTPS path (fallback); `continuation` is filled in per run. */
  http: Omit<HttpSessionOptions, 'continuation'>;
  /** How soon UDP counts as blocked or lost, when the caller said; with fallback on the defaults are shorter. */
  udpTimeouts: { handshakeMs?: number; silenceMs?: number };
  chunks: Chunk[];
  journal: TransferJournal | undefined;
  journalKey: string;
  resumed: boolean;
  bytesTotal: number | null;
  filesTotal: number | null;
  skipped: SkippedEntry[];
}

/**
 * One transfer (possibly several specs run one after another). Events: `progress`, `status`.
 * `done` always resolves, with `status` COMPLETED, FAILED or CANCELED: a failure is a result, not an
 * unhandled rejection in a program that only listens to events.
 */
export class Transfer extends EventEmitter<TransferEvents> {
  readonly id: string;
  readonly transferIds: string[];
  readonly bucket: string;
  readonly direction: 'upload' | 'download';
  readonly resumed: boolean;
  /** Local entries an upload left out (symlinks, sockets, …). */
  readonly skipped: SkippedEntry[];
  readonly done: Promise<TransferResult>;
  private currentStatus: TransferStatus = 'QUEUED';
  private latest: TransferProgress;
  private readonly controller = new AbortController();
  private readonly iterators = new Set<BoundedAsyncQueue<TransferStatus>>();
  private handles: SessionHandles | undefined;
  private wantPaused = false;
  private sessionStarted = false;
  private readonly transportChanges: TransportChange[] = [];

  constructor(private readonly init: TransferInit) {
    super();
    const first = init.chunks[0]!.spec;
    this.id = first.slipstream.transfer_id;
    this.transferIds = init.chunks.map((c) => c.spec.slipstream.transfer_id);
    this.bucket = first.slipstream.bucket;
    this.direction = first.direction === 'send' ? 'upload' : 'download';
    this.resumed = init.resumed;
    this.skipped = init.skipped;
    this.latest = { bytesDone: 0, bytesTotal: init.bytesTotal, rateKbps: 0, filesDone: 0, filesTotal: init.filesTotal, transport: 'udp' };
    this.done = this.run().catch((error: unknown) => this.finish('FAILED', performance.now(), [], errorInfo(error)));
  }

  get status(): TransferStatus {
    return this.currentStatus;
  }

  get progress(): TransferProgress {
    return { ...this.latest };
  }

  pause(): void {
    if (isTerminal(this.currentStatus) || this.wantPaused) return;
    this.wantPaused = true;
    this.handles?.pause();
    this.setStatus('PAUSED');
  }

  resume(): void {
    if (isTerminal(this.currentStatus) || !this.wantPaused) return;
    this.wantPaused = false;
    this.handles?.resume();
    this.setStatus(this.sessionStarted ? 'RUNNING' : 'QUEUED');
  }

  /** Stops the session and cancels the transfer on the service; resolves once the service was told. */
  async cancel(): Promise<void> {
    if (isTerminal(this.currentStatus) || this.controller.signal.aborted) return;
    this.controller.abort(new Error('canceled'));
    await Promise.all(
      this.init.chunks
        .filter((c) => !c.completed)
        .map((c) =>
          this.init.api.cancelTransfer(c.spec.slipstream.transfer_id).catch(() => {
            // Already ended (409), unknown (404) or unreachable: the local session is stopped either way.
          }),
        ),
    );
    await this.init.journal?.delete(this.init.journalKey);
  }

  /** Status updates, starting with the current one, ending after COMPLETED, FAILED or CANCELED. */
  [Symbol.asyncIterator](): AsyncIterableIterator<TransferStatus> {
    const queue = new BoundedAsyncQueue<TransferStatus>(statusQueueCapacity);
    queue.push(this.currentStatus);
    if (isTerminal(this.currentStatus)) queue.close();
    else this.iterators.add(queue);
    const detach = () => this.iterators.delete(queue);
    const originalReturn = queue.return.bind(queue);
    queue.return = () => {
      detach();
      return originalReturn();
    };
    return queue;
  }

  private setStatus(status: TransferStatus): void {
    if (status === this.currentStatus || isTerminal(this.currentStatus)) return;
    this.currentStatus = status;
    for (const queue of this.iterators) queue.push(status);
    if (isTerminal(status)) {
      for (const queue of this.iterators) queue.close();
      this.iterators.clear();
    }
    this.emit('status', status);
  }

  private async run(): Promise<TransferResult> {
    // Let the caller attach listeners after `await client.upload(…)` before anything happens.
    await new Promise((next) => setImmediate(next));
    const started = performance.now();
    const signal = this.controller.signal;
    const fileErrors: SessionFileError[] = [];
    let bytesBefore = 0;
    let filesBefore = 0;
    for (const chunk of this.init.chunks) {
      if (chunk.completed) {
        bytesBefore += chunk.bytesTotal ?? 0;
        filesBefore += chunk.filesTotal ?? 0;
        continue;
      }
      if (signal.aborted) return this.finish('CANCELED', started, fileErrors);
      this.handles = undefined;
      this.sessionStarted = true;
      if (!this.wantPaused) this.setStatus('RUNNING');
      const before = { bytes: bytesBefore, files: filesBefore };
      const callbacks: SessionCallbacks = {
        onProgress: (p) => {
          this.latest = {
            bytesDone: before.bytes + p.bytesDone,
            bytesTotal: this.init.bytesTotal ?? p.bytesTotal,
            rateKbps: p.rateKbps,
            filesDone: before.files + p.filesDone,
            filesTotal: this.init.filesTotal ?? p.filesTotal,
            transport: this.latest.transport,
          };
          this.emit('progress', this.progress);
        },
        onStatus: (status) => {
          // Final statuses come from the result; a pause asked for here wins over the session's RUNNING.
          if (isTerminal(status) || (this.wantPaused && status === 'RUNNING')) return;
          this.setStatus(status);
        },
        attach: (handles) => {
          this.handles = handles;
          if (this.wantPaused) handles.pause();
        },
        signal,
      };
      let result: SessionResult;
      try {
        result = await this.runChunk(chunk, callbacks);
      } catch (error) {
        if (signal.aborted) return this.finish('CANCELED', started, fileErrors);
        return this.finish('FAILED', started, fileErrors, errorInfo(error));
      }
      fileErrors.push(...result.fileErrors);
      bytesBefore += result.bytesDone;
      filesBefore += result.filesDone;
      this.latest = { ...this.latest, bytesDone: bytesBefore, filesDone: filesBefore };
      if (signal.aborted) return this.finish('CANCELED', started, fileErrors);
      if (result.status !== 'COMPLETED') return this.finish(result.status, started, fileErrors, result.error);
      chunk.completed = true;
    }
    return this.finish('COMPLETED', started, fileErrors);
  }

  /**
   * One spec: over UDP first (each spec tries UDP again, so a long multi-spec upload returns to UDP when
   * it comes back); over HTTPS when the spec says `force`, or when UDP is blocked or goes silent and the
   * spec allows fallback, continuing where UDP stopped.
   */
  private async runChunk(chunk: Chunk, callbacks: SessionCallbacks): Promise<SessionResult> {
    const mode = chunk.spec.http_fallback;
    if (mode === 'force') return this.overHttp(chunk, callbacks, 'HTTPS only (http_fallback is force)');
    const timeouts = this.init.udpTimeouts;
    this.setTransport('udp');
    const handshakeMs = timeouts.handshakeMs ?? (mode === 'true' ? defaultFallbackHandshakeTimeoutMs : undefined);
    const silenceMs = timeouts.silenceMs ?? (mode === 'true' ? defaultFallbackSilenceTimeoutMs : undefined);
    const job: SessionJob = {
      ...chunk.job,
      ...(handshakeMs !== undefined ? { udpHandshakeTimeoutMs: handshakeMs } : {}),
      ...(silenceMs !== undefined ? { udpSilenceTimeoutMs: silenceMs } : {}),
    };
    const result = await this.init.runner(chunk.spec, job, callbacks);
    const udpLost = result.status === 'FAILED' && (result.error?.code === 'UdpUnreachable' || result.error?.code === 'ConnectionLost');
    if (!udpLost || callbacks.signal.aborted) return result;
    if (mode !== 'true') {
      return { ...result, error: { code: result.error!.code, message: `${result.error!.message}; HTTPS fallback is off for this transfer (http_fallback false)` } };
    }
    return this.overHttp(chunk, callbacks, result.error!.message, result);
  }

  private async overHttp(chunk: Chunk, callbacks: SessionCallbacks, reason: string, udp?: SessionResult): Promise<SessionResult> {
    this.setTransport('http', reason);
    await this.init.api.recordTransport(chunk.spec.slipstream.transfer_id, 'http', reason).catch(() => {
      // The record is informational; the transfer itself goes on.
    });
    return runHttpSession(chunk.spec, chunk.job, callbacks, { ...this.init.http, ...(udp?.continuation ? { continuation: udp.continuation } : {}) });
  }

  private setTransport(transport: TransportName, reason?: string): void {
    if (transport === this.latest.transport && reason === undefined) return;
    this.latest = { ...this.latest, transport };
    if (reason === undefined) return;
    const change: TransportChange = { transport, reason, at: new Date().toISOString() };
    this.transportChanges.push(change);
    this.emit('transport', change);
  }

  private async finish(status: FinalStatus, started: number, fileErrors: SessionFileError[], error?: { code: string; message: string }): Promise<TransferResult> {
    // A failed transfer keeps its journal entry: a re-run continues it while the token is valid.
    if (status !== 'FAILED') await this.init.journal?.delete(this.init.journalKey).catch(() => undefined);
    this.latest = { ...this.latest, rateKbps: 0 };
    this.setStatus(status);
    return {
      id: this.id,
      transferIds: this.transferIds,
      status,
      ...this.latest,
      elapsedMs: Math.round(performance.now() - started),
      resumed: this.resumed,
      fileErrors,
      ...(error ? { error } : {}),
      transportChanges: [...this.transportChanges],
    };
  }
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof SlipstreamApiError) return { code: error.code, message: error.message };
  const e = error as { name?: string; code?: unknown; message?: string };
  return { code: typeof e?.code === 'string' ? e.code : (e?.name ?? 'Error'), message: e?.message ?? String(error) };
}
