import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { TransferStatus } from '../../contracts';
import { SlipstreamApiError } from '../sdk/errors';
import { isTerminal, TransferClient, type Transfer, type TransferClientOptions } from '../sdk/transfer-client';
import type { AgentTransfer } from './schemas';

/** Transfers running at once; the others wait their turn (QUEUED). */
export const defaultMaxRunning = 2;
/** Transfers not yet finished, at most: beyond, a new one is refused. */
export const maxUnfinished = 100;
/** Finished transfers kept for the page to read; the oldest go first. */
export const maxFinishedKept = 200;

export class AgentBusyError extends Error {
  override name = 'AgentBusyError';
}

/** What runs a job: an SDK transfer, set up with the page's endpoint and key. */
export type StartTransfer = (client: TransferClient) => Promise<Transfer>;

export interface AgentJob {
  direction: 'upload' | 'download';
  name: string;
  bucket: string;
  endpoint: string;
  apiKey: string;
  start: StartTransfer;
}

interface Entry {
  view: AgentTransfer;
  job: AgentJob | undefined;
  transfer: Transfer | undefined;
  startedAt: number | undefined;
  wantPaused: boolean;
  canceled: boolean;
}

export interface AgentTransfersOptions {
  maxRunning?: number;
  /** SDK options every client gets (tests: a session runner, no journal). */
  client?: Omit<TransferClientOptions, 'endpoint' | 'apiKey'>;
}

/**
 * The agent's transfers: a bounded queue in front of the SDK (`TransferClient`), with the state the
 * page polls. The page's API key is held only by a queued job and dropped once its transfer is set up.
 */
export class AgentTransfers {
  private readonly entries = new Map<string, Entry>();
  private readonly maxRunning: number;
  private running = 0;

  constructor(private readonly options: AgentTransfersOptions = {}) {
    this.maxRunning = options.maxRunning ?? defaultMaxRunning;
  }

  add(job: AgentJob): AgentTransfer {
    const unfinished = [...this.entries.values()].filter((e) => !isTerminal(e.view.status)).length;
    if (unfinished >= maxUnfinished) throw new AgentBusyError(`the agent already has ${unfinished} transfers waiting or running; let some finish first`);
    const view: AgentTransfer = {
      id: `at_${randomBytes(8).toString('hex')}`,
      direction: job.direction,
      name: job.name,
      bucket: job.bucket,
      status: 'QUEUED',
      bytesDone: 0,
      bytesTotal: null,
      filesDone: 0,
      filesTotal: null,
      rateKbps: 0,
      transport: 'udp',
      createdAt: new Date().toISOString(),
      elapsedMs: 0,
      transferIds: [],
      error: null,
    };
    this.entries.set(view.id, { view, job, transfer: undefined, startedAt: undefined, wantPaused: false, canceled: false });
    this.prune();
    this.pump();
    return this.get(view.id)!;
  }

  list(): AgentTransfer[] {
    return [...this.entries.keys()].map((id) => this.get(id)!);
  }

  get(id: string): AgentTransfer | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    const elapsedMs = entry.startedAt !== undefined && !isTerminal(entry.view.status) ? performance.now() - entry.startedAt : entry.view.elapsedMs;
    return { ...entry.view, elapsedMs: Math.round(elapsedMs) };
  }

  pause(id: string): AgentTransfer | undefined {
    const entry = this.entries.get(id);
    if (!entry || isTerminal(entry.view.status)) return this.get(id);
    entry.wantPaused = true;
    entry.transfer?.pause();
    this.setStatus(entry, 'PAUSED');
    return this.get(id);
  }

  resume(id: string): AgentTransfer | undefined {
    const entry = this.entries.get(id);
    if (!entry || isTerminal(entry.view.status) || !entry.wantPaused) return this.get(id);
    entry.wantPaused = false;
    if (entry.transfer) {
      entry.transfer.resume();
      this.setStatus(entry, entry.transfer.status);
    } else {
      this.setStatus(entry, 'QUEUED');
      this.pump();
    }
    return this.get(id);
  }

  async cancel(id: string): Promise<AgentTransfer | undefined> {
    const entry = this.entries.get(id);
    if (!entry || isTerminal(entry.view.status)) return this.get(id);
    entry.canceled = true;
    entry.job = undefined;
    if (entry.transfer) await entry.transfer.cancel();
    else this.finish(entry, 'CANCELED', null);
    return this.get(id);
  }

  /** Stops sending (pause) without canceling on the service: a later run can start the transfer again. */
  close(): void {
    for (const entry of this.entries.values()) {
      entry.job = undefined;
      if (!isTerminal(entry.view.status)) entry.transfer?.pause();
    }
  }

  private pump(): void {
    for (const entry of this.entries.values()) {
      if (this.running >= this.maxRunning) return;
      if (entry.job && !entry.transfer && !entry.wantPaused && entry.view.status === 'QUEUED') {
        const job = entry.job;
        entry.job = undefined;
        this.running++;
        void this.run(entry, job).finally(() => {
          this.running--;
          this.pump();
        });
      }
    }
  }

  private async run(entry: Entry, job: AgentJob): Promise<void> {
    entry.startedAt = performance.now();
    let transfer: Transfer;
    try {
      const client = new TransferClient({ ...this.options.client, endpoint: job.endpoint, apiKey: job.apiKey });
      transfer = await job.start(client);
    } catch (error) {
      this.finish(entry, 'FAILED', errorInfo(error));
      return;
    }
    entry.transfer = transfer;
    entry.view = { ...entry.view, transferIds: transfer.transferIds, bytesTotal: transfer.progress.bytesTotal, filesTotal: transfer.progress.filesTotal };
    if (entry.canceled) await transfer.cancel();
    else if (entry.wantPaused) transfer.pause();
    transfer.on('progress', (p) => {
      entry.view = { ...entry.view, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.filesDone, filesTotal: p.filesTotal, rateKbps: p.rateKbps, transport: p.transport };
    });
    transfer.on('transport', (change) => {
      entry.view = { ...entry.view, transport: change.transport };
    });
    transfer.on('status', (status) => {
      if (!isTerminal(status) && !(entry.wantPaused && status !== 'PAUSED')) this.setStatus(entry, status);
    });
    const result = await transfer.done;
    if (isTerminal(entry.view.status)) return;
    entry.view = {
      ...entry.view,
      bytesDone: result.bytesDone,
      bytesTotal: result.bytesTotal,
      filesDone: result.filesDone,
      filesTotal: result.filesTotal,
      transport: result.transport,
    };
    const fileError = result.fileErrors[0];
    const error = result.error ?? (fileError ? { code: fileError.code, message: `${fileError.path}: ${fileError.message}` } : undefined);
    this.finish(entry, result.status, error ?? null);
  }

  private setStatus(entry: Entry, status: TransferStatus): void {
    if (isTerminal(entry.view.status)) return;
    entry.view = { ...entry.view, status };
  }

  private finish(entry: Entry, status: 'COMPLETED' | 'FAILED' | 'CANCELED', error: AgentTransfer['error']): void {
    if (isTerminal(entry.view.status)) return;
    const elapsedMs = entry.startedAt !== undefined ? performance.now() - entry.startedAt : 0;
    // The average over the whole run stays readable once the transfer has ended.
    const rateKbps = elapsedMs > 0 ? (entry.view.bytesDone * 8) / elapsedMs : 0;
    entry.view = { ...entry.view, status, error, elapsedMs: Math.round(elapsedMs), rateKbps: Math.round(rateKbps) };
    entry.job = undefined;
    this.prune();
  }

  private prune(): void {
    const finished = [...this.entries.values()].filter((e) => isTerminal(e.view.status));
    for (const entry of finished.slice(0, Math.max(0, finished.length - maxFinishedKept))) this.entries.delete(entry.view.id);
  }
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (error instanceof SlipstreamApiError) return { code: error.code, message: error.message };
  if (error instanceof Error) return { code: error.name, message: error.message };
  return { code: 'Error', message: String(error) };
}

/** Downloads land in the folder chosen at agent start; it is made on first use. */
export async function ensureFolder(path: string): Promise<string> {
  await mkdir(path, { recursive: true });
  return path;
}
