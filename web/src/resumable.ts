import { describeError, isTransient } from './errors';
import { Gate } from './pool';
import { RateMeter, type TransferControl, type TransferStore } from './transfers';

/** What an attempt's signal aborts with: the user paused or canceled, or the transfer failed. Not reported. */
class Stopped extends Error {
  override name = 'Stopped';
}

/** How `attempts` ended. */
export type AttemptsOutcome = { state: 'completed' } | { state: 'canceled' } | { state: 'failed'; error: unknown };

/**
 * Pause, resume and cancel of a Standard (plain HTTP) transfer, and the loop that runs it across them:
 * pause aborts the running attempt, resume starts a new one that continues from what is done, and
 * passing trouble (network, a busy server) pauses with a message instead of failing.
 */
export abstract class ResumableTransfer implements TransferControl {
  /** Set by the subclass from `TransferStore.add`. */
  abstract readonly id: string;
  protected readonly meter = new RateMeter();
  protected paused = false;
  protected canceled = false;
  private controller = new AbortController();
  private readonly resumed = new Gate();

  constructor(protected readonly store: TransferStore) {}

  pause(): void {
    if (this.paused || this.canceled) return;
    this.paused = true;
    this.controller.abort(new Stopped('paused'));
    this.store.update(this.id, { state: 'paused', rateKbps: 0, message: null });
  }

  resume(): void {
    if (!this.paused || this.canceled) return;
    this.paused = false;
    this.meter.reset();
    this.store.update(this.id, { state: 'running', message: null });
    this.resumed.open();
  }

  abstract cancel(): Promise<void>;

  /** Marks the transfer canceled (or failed) and aborts its attempt; false if it already was. */
  protected stop(why: 'canceled' | 'failed'): boolean {
    if (this.canceled) return false;
    this.canceled = true;
    this.controller.abort(new Stopped(why));
    this.resumed.open();
    return true;
  }

  /** Runs `attempt` (with a signal that a pause or cancel aborts) until it completes, is canceled or fails for good. */
  protected async attempts(attempt: (signal: AbortSignal) => Promise<void>): Promise<AttemptsOutcome> {
    for (;;) {
      if (this.paused) await this.resumed.wait();
      if (this.canceled) return { state: 'canceled' };
      this.controller = new AbortController();
      const signal = this.controller.signal;
      try {
        await attempt(signal);
        return { state: 'completed' };
      } catch (error) {
        if (this.canceled) return { state: 'canceled' };
        if (this.paused && signal.aborted) continue;
        if (!isTransient(error)) return { state: 'failed', error };
        // Passing trouble: keep everything and let the user resume.
        this.pause();
        this.store.update(this.id, { message: `${describeError(error)} Resume to continue where it stopped.` });
      }
    }
  }
}
