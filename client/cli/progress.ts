import type { TransferStatus } from '../../contracts';
import type { TransferProgress } from '../sdk/transfer-client';
import { formatProgressLine } from './format';
import type { CliIo } from './io';

export interface ReporterOptions {
  /** JSON lines on stdout. */
  json: boolean;
  /** A redrawn progress bar on stderr. */
  bar: boolean;
  label: string;
  now?: () => number;
  barIntervalMs?: number;
  jsonIntervalMs?: number;
}

/** Redraws are throttled: a terminal does not need more than ~10 frames/s, a log not more than 1 line/s. */
const defaultBarIntervalMs = 100;
const defaultJsonIntervalMs = 1000;

/** Progress for upload/download: a bar on a TTY's stderr and/or JSON lines on stdout. */
export class ProgressReporter {
  private lastBarMs = -Infinity;
  private lastJsonMs = -Infinity;
  private latest: TransferProgress | undefined;
  private status: TransferStatus = 'QUEUED';
  private barShown = false;
  private readonly now: () => number;

  constructor(
    private readonly io: CliIo,
    private readonly options: ReporterOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
  }

  /** One JSON line (when JSON output is on). */
  event(event: string, fields: Record<string, unknown>): void {
    if (this.options.json) this.io.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
  }

  onStatus(status: TransferStatus): void {
    this.status = status;
    this.event('status', { status });
    // Redraw for the "(paused)" label; the final frame comes from finish().
    if (status === 'PAUSED' || status === 'RUNNING') this.draw(true);
  }

  onProgress(progress: TransferProgress): void {
    this.latest = progress;
    const now = this.now();
    if (this.options.json && now - this.lastJsonMs >= (this.options.jsonIntervalMs ?? defaultJsonIntervalMs)) {
      this.lastJsonMs = now;
      this.event('progress', { ...progress });
    }
    if (now - this.lastBarMs >= (this.options.barIntervalMs ?? defaultBarIntervalMs)) this.draw(false);
  }

  /** The last frame, then a newline so later output starts on its own line. */
  finish(progress: TransferProgress): void {
    this.latest = progress;
    this.draw(true);
    if (this.barShown) this.io.stderr.write('\n');
    this.barShown = false;
  }

  /** Wipes the bar so a message can be printed cleanly. */
  clear(): void {
    if (this.barShown) this.io.stderr.write('\r\x1b[K');
    this.barShown = false;
  }

  private draw(force: boolean): void {
    if (!this.options.bar || !this.latest) return;
    const now = this.now();
    if (!force && now - this.lastBarMs < (this.options.barIntervalMs ?? defaultBarIntervalMs)) return;
    this.lastBarMs = now;
    const columns = this.io.stderr.columns ?? 80;
    const transport = this.latest.transport === 'http' ? ' over HTTPS' : '';
    const label = `${this.options.label}${transport}${this.status === 'PAUSED' ? ' (paused)' : ''}`;
    this.io.stderr.write(`\r${formatProgressLine(this.latest, columns, label)}\x1b[K`);
    this.barShown = true;
  }
}
