import type { Prng } from './prng';

/** One direction of a path. Times in (virtual) milliseconds. */
export interface LinkParams {
  /** One-way propagation delay. */
  delayMs: number;
  /** Extra delay, uniform in [0, jitterMs), that keeps packet order (FIFO). */
  jitterMs: number;
  /** Probability a packet is lost on the wire. */
  loss: number;
  /** Probability a packet is held back by up to `reorderMs` extra (and so overtaken). */
  reorder: number;
  reorderMs: number;
  /** Probability a packet arrives twice. */
  duplicate: number;
  /** Probability a packet arrives with 1–4 random bits flipped. */
  corrupt: number;
  /** Bottleneck rate in Mbit/s; 0 = unlimited. */
  rateMbps: number;
  /** Drop-tail queue before the bottleneck, as milliseconds of queueing at the rate. */
  queueMs: number;
  /** Link down: every packet sent, or due to arrive, in [startMs, endMs) is lost. */
  blackouts: { startMs: number; endMs: number }[];
}

export interface Delivery {
  atMs: number;
  bytes: Buffer;
  corrupted: boolean;
  duplicate: boolean;
}

export type DropReason = 'blackout' | 'queue' | 'loss';

export interface LinkStats {
  packets: number;
  bytes: number;
  delivered: number;
  dropped: Record<DropReason, number>;
  /** Bytes of the packets lost (dropped, or delivered corrupted), every cause. */
  lostBytes: number;
  duplicated: number;
  corrupted: number;
  reordered: number;
  /** Longest queueing delay seen at the bottleneck. */
  maxQueueMs: number;
}

export class Link {
  readonly stats: LinkStats = {
    packets: 0,
    bytes: 0,
    delivered: 0,
    dropped: { blackout: 0, queue: 0, loss: 0 },
    lostBytes: 0,
    duplicated: 0,
    corrupted: 0,
    reordered: 0,
    maxQueueMs: 0,
  };
  /** When the bottleneck has sent everything queued so far. */
  private busyUntilMs = 0;
  /** Latest arrival of an in-order packet: jitter never reorders. */
  private lastArrivalMs = 0;

  constructor(
    readonly name: string,
    readonly params: LinkParams,
    private readonly rng: Prng,
  ) {}

  isDown(atMs: number): boolean {
    for (const b of this.params.blackouts) if (atMs >= b.startMs && atMs < b.endMs) return true;
    return false;
  }

  /**
   * A datagram enters the link at `nowMs`. Returns its arrivals (none, one, or two with a duplicate), or
   * the reason it was dropped. `bytes` is never modified: a corrupted copy is a copy.
   */
  send(nowMs: number, bytes: Buffer): Delivery[] | DropReason {
    const p = this.params;
    this.stats.packets += 1;
    this.stats.bytes += bytes.length;
    if (this.isDown(nowMs)) return this.drop('blackout', bytes.length);

    let departMs = nowMs;
    if (p.rateMbps > 0) {
      const queuedMs = Math.max(0, this.busyUntilMs - nowMs);
      if (queuedMs > p.queueMs) return this.drop('queue', bytes.length);
      this.stats.maxQueueMs = Math.max(this.stats.maxQueueMs, queuedMs);
      const serializeMs = (bytes.length * 8) / (p.rateMbps * 1000);
      this.busyUntilMs = Math.max(nowMs, this.busyUntilMs) + serializeMs;
      departMs = this.busyUntilMs;
    }
    // Draw every decision up front, whatever happens, so one knob does not shift the others' draws.
    const lost = this.rng.chance(p.loss);
    const jitter = p.jitterMs > 0 ? this.rng.range(0, p.jitterMs) : 0;
    const reordered = this.rng.chance(p.reorder);
    const extra = reordered ? this.rng.range(0.1, Math.max(0.2, p.reorderMs)) : 0;
    const duplicated = this.rng.chance(p.duplicate);
    const dupExtra = this.rng.range(0, Math.max(1, p.jitterMs));
    const corrupted = this.rng.chance(p.corrupt);
    if (lost) return this.drop('loss', bytes.length);

    // In order unless reordered: a reordered packet is held back `extra` beyond its in-order arrival,
    // so the packets behind it overtake it (it never jumps ahead of the ones before it).
    let atMs = Math.max(departMs + p.delayMs + jitter, this.lastArrivalMs);
    if (reordered) {
      atMs += extra;
      this.stats.reordered += 1;
    } else {
      this.lastArrivalMs = atMs;
    }
    if (this.isDown(atMs)) return this.drop('blackout', bytes.length);

    const out: Delivery[] = [];
    let payload = bytes;
    if (corrupted) {
      payload = Buffer.from(bytes);
      // 1–4 distinct bits: flipping one bit twice would deliver the packet intact, labelled corrupted.
      const bits = new Set<number>();
      const flips = Math.min(this.rng.int(1, 4), payload.length * 8);
      while (bits.size < flips) bits.add(this.rng.int(0, payload.length * 8 - 1));
      for (const bit of bits) payload[bit >> 3] = payload[bit >> 3]! ^ (1 << (bit & 7));
      this.stats.corrupted += 1;
      this.stats.lostBytes += bytes.length;
    }
    out.push({ atMs, bytes: payload, corrupted, duplicate: false });
    if (duplicated) {
      out.push({ atMs: atMs + dupExtra, bytes: Buffer.from(payload), corrupted, duplicate: true });
      this.stats.duplicated += 1;
    }
    this.stats.delivered += out.length;
    return out;
  }

  private drop(reason: DropReason, bytes: number): DropReason {
    this.stats.dropped[reason] += 1;
    this.stats.lostBytes += bytes;
    return reason;
  }
}

/** A path that drops nothing: for hand-written scenarios to start from. */
export function cleanLink(delayMs: number): LinkParams {
  return { delayMs, jitterMs: 0, loss: 0, reorder: 0, reorderMs: 0, duplicate: 0, corrupt: 0, rateMbps: 0, queueMs: 0, blackouts: [] };
}
