import { beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../web/src/api';
import { ResumableTransfer, type AttemptsOutcome } from '../../web/src/resumable';
import { TransferStore } from '../../web/src/transfers';

beforeAll(() => {
  // The store batches its listeners per frame; no frames in Node.
  globalThis.requestAnimationFrame ??= (callback: FrameRequestCallback) => setTimeout(() => callback(0), 0) as unknown as number;
});

/** A transfer whose attempt is a script: each call takes the next step, given the attempt's signal. */
class Scripted extends ResumableTransfer {
  readonly id: string;
  readonly outcome: Promise<AttemptsOutcome>;
  attemptsStarted = 0;

  constructor(store: TransferStore, steps: ((signal: AbortSignal) => Promise<void>)[]) {
    super(store);
    this.id = store.add({ name: 'x', detail: '', direction: 'download', transport: 'standard', state: 'running', bytesTotal: null, filesTotal: null }, this);
    this.outcome = this.attempts((signal) => steps[this.attemptsStarted++]!(signal));
  }

  async cancel(): Promise<void> {
    this.stop('canceled');
  }
}

/** Never settles on its own: rejects with the signal's reason when it aborts (a request in flight). */
const pending = (signal: AbortSignal) => new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
const view = (store: TransferStore, id: string) => store.list().find((t) => t.id === id)!;
const tick = () => new Promise((next) => setTimeout(next, 0));

describe('the console page: a Standard transfer across pauses', () => {
  it('pause aborts the running attempt, resume starts a new one', async () => {
    const store = new TransferStore();
    const t = new Scripted(store, [pending, async () => undefined]);
    await tick();
    t.pause();
    expect(view(store, t.id).state).toBe('paused');
    await tick();
    expect(t.attemptsStarted).toBe(1);
    t.resume();
    expect(await t.outcome).toEqual({ state: 'completed' });
    expect(t.attemptsStarted).toBe(2);
  });

  it('passing trouble pauses with a message; a lasting error fails', async () => {
    const store = new TransferStore();
    const t = new Scripted(store, [
      async () => {
        throw new ApiError(503, 'StorageUnavailable', 'busy');
      },
      async () => {
        throw new ApiError(403, 'Forbidden', 'no');
      },
    ]);
    await tick();
    expect(view(store, t.id).state).toBe('paused');
    expect(view(store, t.id).message).toMatch(/Resume to continue where it stopped\.$/);
    t.resume();
    const outcome = await t.outcome;
    expect(outcome.state).toBe('failed');
    expect(outcome.state === 'failed' && outcome.error).toBeInstanceOf(ApiError);
  });

  it('cancel ends it, paused or running, and only once', async () => {
    const store = new TransferStore();
    const running = new Scripted(store, [pending]);
    await tick();
    await running.cancel();
    expect(await running.outcome).toEqual({ state: 'canceled' });

    const paused = new Scripted(store, [pending]);
    await tick();
    paused.pause();
    await paused.cancel();
    expect(await paused.outcome).toEqual({ state: 'canceled' });
    paused.resume();
    expect(paused.attemptsStarted).toBe(1);
  });
});
