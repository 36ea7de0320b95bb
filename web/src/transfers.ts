/** The transfers panel's model: one entry per user action (a file, a folder, a selection). */

export type TransferState = 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'canceled';
export type Transport = 'standard' | 'high-speed';

export interface TransferView {
  id: string;
  name: string;
  direction: 'upload' | 'download';
  transport: Transport;
  /** Where it goes or comes from, in words ("to local/photos/", "into the agent's downloads folder"). */
  detail: string;
  state: TransferState;
  bytesDone: number;
  bytesTotal: number | null;
  filesDone: number;
  filesTotal: number | null;
  rateKbps: number;
  /** A high-speed transfer that continues over HTTPS because UDP is blocked says so. */
  overHttps: boolean;
  /** An error, or a note such as "handed to the browser's downloads", in words. */
  message: string | null;
  startedAt: number;
  endedAt: number | null;
}

export interface TransferControl {
  pause(): void;
  resume(): void;
  cancel(): Promise<void>;
}

export const isFinished = (state: TransferState) => state === 'completed' || state === 'failed' || state === 'canceled';

/** Seconds left at the current rate, when it can be told. */
export function etaSeconds(view: TransferView): number | null {
  if (view.bytesTotal === null || view.rateKbps <= 0 || view.state !== 'running') return null;
  return Math.max(0, view.bytesTotal - view.bytesDone) / ((view.rateKbps * 1000) / 8);
}

/** Average rate over a whole finished transfer. */
export function averageRateKbps(view: TransferView): number {
  const elapsedMs = (view.endedAt ?? performance.now()) - view.startedAt;
  return elapsedMs > 0 ? (view.bytesDone * 8) / elapsedMs : 0;
}

/** Rate over the last few seconds of byte counts: steady enough to read, quick to follow a change. */
export class RateMeter {
  private samples: { at: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 3000) {}

  sample(bytes: number, at = performance.now()): number {
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0]!.at > this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const spanMs = at - first.at;
    return spanMs > 0 ? (Math.max(0, bytes - first.bytes) * 8) / spanMs : 0;
  }

  reset(): void {
    this.samples = [];
  }
}

type Listener = () => void;

let nextId = 1;

export class TransferStore {
  private readonly entries = new Map<string, { view: TransferView; control: TransferControl | null }>();
  private readonly listeners = new Set<Listener>();
  private scheduled = false;

  add(init: Omit<TransferView, 'id' | 'startedAt' | 'endedAt' | 'bytesDone' | 'filesDone' | 'rateKbps' | 'overHttps' | 'message'> & Partial<TransferView>, control: TransferControl | null): string {
    const id = init.id ?? `t${nextId++}`;
    this.entries.set(id, {
      view: { bytesDone: 0, filesDone: 0, rateKbps: 0, overHttps: false, message: null, startedAt: performance.now(), endedAt: null, ...init, id },
      control,
    });
    this.changed();
    return id;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  update(id: string, patch: Partial<TransferView>): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    const finishing = patch.state !== undefined && isFinished(patch.state) && !isFinished(entry.view.state);
    entry.view = { ...entry.view, ...patch, ...(finishing ? { endedAt: performance.now() } : {}) };
    if (finishing) entry.control = null;
    this.changed();
  }

  control(id: string): TransferControl | null {
    return this.entries.get(id)?.control ?? null;
  }

  list(): TransferView[] {
    return [...this.entries.values()].map((e) => e.view);
  }

  clearFinished(): void {
    for (const [id, entry] of this.entries) if (isFinished(entry.view.state)) this.entries.delete(id);
    this.changed();
  }

  subscribe(listener: Listener): void {
    this.listeners.add(listener);
  }

  /** Many progress events become one render per frame. */
  private changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener();
    });
  }
}
