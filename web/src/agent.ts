import { z } from 'zod';
import { errorBodySchema } from '../../contracts';
import {
  agentInfoSchema,
  agentTokenHeader,
  agentTransferListSchema,
  agentTransferSchema,
  shareEntriesSchema,
  shareListSchema,
  type AgentInfo,
  type AgentTransfer,
  type AgentTransferRequest,
} from '../../client/agent/schemas';
import { ApiError } from './api';
import { isFinished, type TransferState, type TransferStore } from './transfers';

/** How often running high-speed transfers are read from the agent. */
const pollIntervalMs = 500;
const requestTimeoutMs = 10_000;

export type AgentStatus = { state: 'not-running' } | { state: 'not-paired'; info: AgentInfo } | { state: 'ready'; info: AgentInfo };

/**
 * The local agent (`slip agent`, README "The console"): the page asks it to move files over UDP, since a
 * browser cannot. It answers only this page's origin and only with the pairing token the user gave.
 */
export class AgentClient {
  constructor(
    readonly url: string,
    private token: string | null,
  ) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  private async call<S extends z.ZodType>(path: string, schema: S, init: { method?: string; json?: unknown } = {}): Promise<z.infer<S>> {
    const headers: Record<string, string> = {};
    if (this.token) headers[agentTokenHeader] = this.token;
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(this.url + path, {
        method: init.method ?? 'GET',
        headers,
        ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
        signal: AbortSignal.timeout(requestTimeoutMs),
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'AgentNotRunning', 'The Slipstream agent is not running on this computer.');
    }
    const json: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const body = errorBodySchema.safeParse(json);
      throw new ApiError(response.status, body.success ? body.data.error.code : `Http${response.status}`, body.success ? body.data.error.message : `the agent answered ${response.status}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError(response.status, 'UnexpectedAnswer', 'the agent answered something this page does not understand (update one of them)');
    return parsed.data;
  }

  /** Whether the agent runs here, and whether this page is paired with it. */
  async status(): Promise<AgentStatus> {
    try {
      const info = await this.call('/v1/agent', agentInfoSchema);
      return info.paired ? { state: 'ready', info } : { state: 'not-paired', info };
    } catch (error) {
      if (error instanceof ApiError && error.status === 0) return { state: 'not-running' };
      throw error;
    }
  }

  shares() {
    return this.call('/v1/shares', shareListSchema);
  }

  entries(share: string, path: string) {
    return this.call(`/v1/shares/${encodeURIComponent(share)}/entries?${new URLSearchParams({ path })}`, shareEntriesSchema);
  }

  start(request: AgentTransferRequest) {
    return this.call('/v1/transfers', agentTransferSchema, { method: 'POST', json: request });
  }

  list() {
    return this.call('/v1/transfers', agentTransferListSchema);
  }

  command(id: string, action: 'pause' | 'resume' | 'cancel') {
    return this.call(`/v1/transfers/${encodeURIComponent(id)}/${action}`, agentTransferSchema, { method: 'POST' });
  }
}

const stateOf: Record<AgentTransfer['status'], TransferState> = {
  QUEUED: 'queued',
  RUNNING: 'running',
  PAUSED: 'paused',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELED: 'canceled',
};

/**
 * Mirrors the agent's transfers that this page started into the transfers panel, polling while any is
 * unfinished. Pause, resume and cancel are commands to the agent.
 */
export class AgentTransfers {
  private readonly mine = new Map<string, string>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly agent: AgentClient,
    private readonly store: TransferStore,
    private readonly onError: (message: string) => void,
  ) {}

  track(transfer: AgentTransfer, detail: string): void {
    const control = {
      pause: () => void this.agent.command(transfer.id, 'pause').then((t) => this.apply(t), (e: unknown) => this.onError(String((e as Error).message))),
      resume: () => void this.agent.command(transfer.id, 'resume').then((t) => this.apply(t), (e: unknown) => this.onError(String((e as Error).message))),
      cancel: async () => this.apply(await this.agent.command(transfer.id, 'cancel')),
    };
    const id = this.store.add(
      { id: `agent-${transfer.id}`, name: transfer.name, detail, direction: transfer.direction, transport: 'high-speed', state: stateOf[transfer.status], bytesTotal: transfer.bytesTotal, filesTotal: transfer.filesTotal },
      control,
    );
    this.mine.set(transfer.id, id);
    this.apply(transfer);
    this.schedule();
  }

  private apply(transfer: AgentTransfer): void {
    const id = this.mine.get(transfer.id);
    if (!id) return;
    const state = stateOf[transfer.status];
    this.store.update(id, {
      state,
      bytesDone: transfer.bytesDone,
      bytesTotal: transfer.bytesTotal,
      filesDone: transfer.filesDone,
      filesTotal: transfer.filesTotal,
      rateKbps: state === 'running' || isFinished(state) ? transfer.rateKbps : 0,
      overHttps: transfer.transport === 'http',
      message: transfer.error ? transfer.error.message : null,
    });
    if (isFinished(state)) this.mine.delete(transfer.id);
  }

  private schedule(): void {
    if (this.timer !== undefined || this.mine.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.agent.list().then(
        ({ transfers }) => {
          for (const t of transfers) this.apply(t);
          this.schedule();
        },
        () => {
          // The agent stopped: what it was running is unknown from here on.
          for (const [agentId, id] of this.mine) {
            this.store.update(id, { state: 'failed', rateKbps: 0, message: 'The Slipstream agent stopped; start it again and repeat the transfer.' });
            this.mine.delete(agentId);
          }
        },
      );
    }, pollIntervalMs);
  }
}
