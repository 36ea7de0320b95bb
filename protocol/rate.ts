/**
 * Rate control: a rate (not a window) that reacts to queueing delay, not to random loss, so throughput
 * holds on lossy long links; a token-bucket pacer releases it in bursts about every millisecond.
 */
export type RatePolicy = 'fixed' | 'high' | 'fair' | 'low';

export interface RateBounds {
  /** Bytes per second. */
  minBps: number;
  maxBps: number;
}

/** Queueing delay each policy tolerates before it backs off, in ms (and as a share of the base RTT). */
const queueTargetMs: Record<Exclude<RatePolicy, 'fixed'>, { floorMs: number; rttShare: number }> = {
  high: { floorMs: 25, rttShare: 0.5 },
  fair: { floorMs: 12, rttShare: 0.25 },
  low: { floorMs: 4, rttShare: 0.05 },
};

export const kbpsToBps = (kbps: number) => (kbps * 1000) / 8;

/**
 * No policy goes below this (bytes/s, ~1 full packet per 90 ms): at rate 0 the pacer never releases a
 * packet, no ACK comes back, and nothing can raise the rate again.
 */
export const rateFloorBps = 16_000;
/** A full packet's serialization at the bottleneck looks like queueing: tolerate this many of them. */
const packetsOfQueue = 2;
const packetBytesForTarget = 1400;
/** Decisions (≈ RTTs) the delivery-rate maximum looks back over, and how far above it the rate may go. */
const deliveryWindow = 8;
const deliveryHeadroom = 1.5;

export class RateController {
  /** Bytes per second. */
  rateBps: number;
  private minRttMs = Infinity;
  /** Recent RTT: a fast EWMA of samples, the queueing signal. */
  private recentRttMs = 0;
  private startup = true;
  private lastUpdateMs = -Infinity;
  private ackedSinceUpdate = 0;
  /** Delivery rates of the last decisions (bytes/s): a policer or shallow buffer drops, it never queues. */
  private readonly delivered: number[] = [];
  private fullPipeBps = 0;
  private roundsWithoutGrowth = 0;

  constructor(
    private readonly policy: RatePolicy,
    private bounds: RateBounds,
    initialBps: number,
  ) {
    this.bounds = { minBps: Math.max(bounds.minBps, Math.min(rateFloorBps, bounds.maxBps)), maxBps: bounds.maxBps };
    this.rateBps = policy === 'fixed' ? this.bounds.maxBps : clamp(initialBps, this.bounds.minBps, this.bounds.maxBps);
  }

  get baseRttMs(): number {
    return this.minRttMs;
  }

  get inStartup(): boolean {
    return this.startup;
  }

  private targetDelayMs(): number {
    if (this.policy === 'fixed') return Infinity;
    const t = queueTargetMs[this.policy];
    // The min RTT often comes from a small packet (an ACK-eliciting PING); a full packet takes
    // packetBytes / rate longer to serialize at a bottleneck near our rate. Below ~3 Mbit/s that alone
    // exceeds the `low` floor (4 ms) and the rate would fall for ever.
    const serializationMs = (packetsOfQueue * packetBytesForTarget * 1000) / this.rateBps;
    return Math.max(t.floorMs, t.rttShare * (Number.isFinite(this.minRttMs) ? this.minRttMs : 0), serializationMs);
  }

  /** One RTT sample (ms) from an ACK, and the bytes it newly acknowledged. */
  onAck(nowMs: number, rttSampleMs: number, ackedBytes: number): void {
    this.minRttMs = Math.min(this.minRttMs, rttSampleMs);
    this.recentRttMs = this.recentRttMs === 0 ? rttSampleMs : this.recentRttMs * 0.75 + rttSampleMs * 0.25;
    this.ackedSinceUpdate += ackedBytes;
    if (this.policy === 'fixed') return;
    // Decide once per (recent) RTT, with at least 10 ms between decisions.
    const interval = Math.max(10, this.recentRttMs);
    if (nowMs - this.lastUpdateMs < interval) return;
    const elapsedMs = Number.isFinite(this.lastUpdateMs) ? nowMs - this.lastUpdateMs : interval;
    const deliveredBps = (this.ackedSinceUpdate * 1000) / elapsedMs;
    this.lastUpdateMs = nowMs;
    this.ackedSinceUpdate = 0;

    this.delivered.push(deliveredBps);
    if (this.delivered.length > deliveryWindow) this.delivered.shift();
    const maxDeliveredBps = Math.max(...this.delivered);

    const queueMs = this.recentRttMs - this.minRttMs;
    const target = this.targetDelayMs();
    if (this.startup) {
      // The pipe is full when delivery stops growing, queue or no queue (BBR's full-pipe test).
      if (deliveredBps >= this.fullPipeBps * 1.25) {
        this.fullPipeBps = deliveredBps;
        this.roundsWithoutGrowth = 0;
      } else {
        this.roundsWithoutGrowth += 1;
      }
      if (queueMs < target / 2 && this.roundsWithoutGrowth < 3) {
        this.rateBps = Math.min(this.rateBps * 2, this.bounds.maxBps);
        return;
      }
      this.startup = false;
      // Leave startup at what the path delivered, not at the overshoot that built the queue.
      this.rateBps = this.roundsWithoutGrowth >= 3 ? maxDeliveredBps : Math.max(deliveredBps, this.rateBps * 0.5);
    }
    if (queueMs <= target) {
      // Grow in proportion to the headroom left: fast when the queue is empty, gently near the target.
      const headroom = 1 - queueMs / target;
      this.rateBps += Math.max(this.rateBps * 0.08 * headroom, 2_000);
    } else {
      const excess = Math.min(1, (queueMs - target) / target);
      this.rateBps *= 1 - 0.25 * excess;
    }
    // Never far above what the path delivers: drops at a policer or a shallow buffer show no queueing
    // delay, only a delivery rate below the sending rate. 1.5× leaves random loss up to 33 % alone.
    if (maxDeliveredBps > 0) this.rateBps = Math.min(this.rateBps, maxDeliveredBps * deliveryHeadroom);
    this.rateBps = clamp(this.rateBps, this.bounds.minBps, this.bounds.maxBps);
  }

  /** Nothing acknowledged for a probe timeout: the path may be gone; start over gently when it returns. */
  onPersistentCongestion(): void {
    if (this.policy === 'fixed') return;
    this.rateBps = clamp(this.rateBps / 2, this.bounds.minBps, this.bounds.maxBps);
    // Probe back up exponentially when the path returns (a blackout is not congestion).
    this.startup = true;
    this.fullPipeBps = 0;
    this.roundsWithoutGrowth = 0;
    this.delivered.length = 0;
  }
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/**
 * Milliseconds of sending the bucket keeps when the sender wakes late. Releases are scheduled about every
 * millisecond, but a timer fires late (a busy event loop, Node's 1 ms floor): with a 1 ms bucket every
 * late wake-up loses tokens, and at 200 Mbit/s the sender kept barely half its rate.
 */
const catchUpMs = 4;

/** A token bucket refilled at the rate; released in bursts about every millisecond (≥ 2 packets). */
export class Pacer {
  private tokens = 0;
  private lastMs = -Infinity;

  constructor(private readonly packetBytes: number) {}

  private burstBytes(rateBps: number): number {
    return Math.max(2 * this.packetBytes, rateBps / 1000);
  }

  refill(nowMs: number, rateBps: number): void {
    if (!Number.isFinite(this.lastMs)) {
      this.tokens = this.burstBytes(rateBps);
    } else if (nowMs > this.lastMs) {
      this.tokens = Math.min(Math.max(this.burstBytes(rateBps), (catchUpMs * rateBps) / 1000), this.tokens + ((nowMs - this.lastMs) * rateBps) / 1000);
    }
    this.lastMs = Math.max(this.lastMs, nowMs);
  }

  canSend(bytes: number): boolean {
    return this.tokens >= bytes;
  }

  spend(bytes: number): void {
    this.tokens -= bytes;
  }

  /** When `bytes` tokens will be there, released at whole milliseconds so sends come in bursts. */
  nextSendMs(nowMs: number, rateBps: number, bytes: number): number {
    const deficit = bytes - this.tokens;
    if (deficit <= 0) return nowMs;
    return nowMs + Math.max(1, Math.ceil((deficit * 1000) / rateBps));
  }
}
