/**
 * Rate control: a rate (not a window) that reacts to queueing delay and to buffer overflow, not to random
 * loss, so throughput holds on lossy long links, and holds a share next to a loss-based flow; a
 * token-bucket pacer releases it in bursts about every millisecond. protocol/README.md describes it.
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
/**
 * At least this long between decisions: on a 10 ms path a decision per RTT would read every event-loop
 * stall of the sender or receiver (GC, disk, S3) as queueing.
 */
const decisionFloorMs = 20;
/**
 * Below this base RTT a queue counts once it stood through two decision intervals (see onAck). Longer
 * intervals outlast such stalls anyway, and next to a loss-based flow the later reaction let the queue
 * grow to the buffer before each drain (bench:wan policy-fair: Slipstream 64–75 % of the link in 4 of 9
 * runs, never entering `competing`).
 */
const confirmBelowRttMs = 2 * decisionFloorMs;
/**
 * A queue above the target for this many decisions in a row that stayed above (a share
 * `queueHeldShare` of its peak) while we sent at most `yieldedShare` of what we delivered is not ours: our own queue
 * drains once we send below the capacity; this one a buffer-filling (loss-based) flow refills, and
 * backing off further would hand it the whole link.
 */
const competitorDecisions = 4;
const yieldedShare = 0.75;
const queueHeldShare = 0.75;
/**
 * Next to such a flow the rate stays at or above half the bottleneck's capacity: the best delivery rate
 * (a mean of `capacityDecisions` decisions, so a burst of compressed ACKs does not count). A steady
 * rate next to TCP CUBIC leaves it the rest and lets it grow undisturbed (bench:wan, fixed 100 Mbit/s
 * next to CUBIC on 200 Mbit/s: 92 / 98 Mbit/s); imitating CUBIC's window law instead left CUBIC
 * 10–15 %: a CUBIC flow that lost early grows slowly from its small window, and each overflow we
 * cause sets it back.
 */
const competingShare = 0.5;
const capacityDecisions = 4;
/**
 * Growth per decision with the queue empty (`low`: slower); `probeGrowth` from `nearBottleneckShare` of
 * the bottleneck's rate as last found, or while the rate runs `pastBottleneckShare` ahead of delivery:
 * the queue that growth builds shows only an RTT later. That rate is forgotten once the path delivers
 * `pastBottleneckShare` of it. When the best delivery rate so far stood for it (below the bottleneck,
 * only our own rate), a startup that a stall ended at half the link grew back at 2 % per decision
 * (10 ms paths: 0.5–1.1 s to 200 Mbit/s; the unit test's model: 874 ms, now 374 ms).
 */
const delayGrowth = 0.08;
const lowGrowth = 0.04;
const probeGrowth = 0.02;
const nearBottleneckShare = 0.9;
const pastBottleneckShare = 1.1;
/**
 * Startup's first round on a ServerHello's credit is sent blind, before any ACK: at most this rate
 * (2 MiB per 100 ms, 168 Mbit/s), whatever the credit and the round trip (see `awaitPeer`).
 */
const firstFlightMaxBps = (2 * 1024 * 1024 * 1000) / 100;
/**
 * Startup keeps at most this many times what the path delivers (over at least `decisionFloorMs`) in
 * flight once ACKs come: the rate doubles each round while delivery shows the round before, so without
 * a bound the rounds that pass the bottleneck send 2–4× what it takes until their ACKs show it. 2.5 lets
 * ordinary doubling through (the rate runs 2× ahead of what the last round delivered).
 */
const startupInflightGain = 2.5;
/**
 * A startup interval goes into the random-loss sample only if its latest samples show less queue than a
 * quarter of the target, and less than this (ms): a blind first round past a bottleneck with a shallow
 * buffer shows no queue in its first samples (the interval's minimum) but a full buffer in its last.
 */
const sampleQueueFloorMs = 5;
/** Delivery grew in a startup round when it rose by this factor over the best round before. */
const fullPipeGrowth = 1.25;
/**
 * Overflow: loss above the random rate by this share of the interval's packets (delay mode), or by
 * `startupOverflowMarginShare` in startup; once the random-loss estimate rests on
 * `lossSampleMinPackets` (startup: `startupLossSamplePackets`). A rate past the bottleneck by a factor
 * g loses 1 − 1/g of what it sends.
 */
const overflowMarginShare = 0.005;
const startupOverflowMarginShare = 0.05;
const startupLossSamplePackets = 200;
/** The most random loss the controller believes in: beyond it, loss is overflow. */
const maxRandomLossShare = 0.5;
const lossSampleMinPackets = 1000;
/** A queue above the target is drained by sending at most this share below the delivery rate. */
const maxDrainShare = 0.5;
/** Overflow loss makes the delay mode back off by this factor, as a loss-based flow would. */
const overflowBackoff = 0.7;
/** Competing mode: growth under the target, as a share of the capacity per second; and the share at which it ends. */
const competingCreepPerS = 0.1;
const aloneShare = 0.9;

export type RateMode = 'startup' | 'delay' | 'competing';

export class RateController {
  /** Bytes per second. */
  rateBps: number;
  private minRttMs = Infinity;
  /** Recent RTT: a fast EWMA of samples, for the decision interval. */
  private recentRttMs = 0;
  /**
   * Lowest RTT sample of this decision interval (about an RTT): the standing RTT. A queue shows in every
   * sample; a stall (GC, a burst of ACKs) only in some, so the minimum ignores it.
   */
  private intervalMinRttMs = Infinity;
  /**
   * After a cut, decisions wait for samples of packets sent from here on: earlier ones still show the
   * queue the old rate built (and a cut sized to drain it takes about a base RTT to do so); judging by
   * them would cut again and again, long after the queue drained.
   */
  private judgeSentFromMs = -Infinity;
  /** The rate a drain came down from, to return to when the queue is back under the target. */
  private restoreBps = 0;
  private modeNow: RateMode;
  private lastUpdateMs = -Infinity;
  private ackedSinceUpdate = 0;
  /**
   * Of those, the bytes of packets sent since `judgeSentFromMs`: the losses of earlier ones are not
   * counted, so neither are they, or the random-loss estimate after a cut read the path as lossless.
   */
  private judgedAckedSinceUpdate = 0;
  /** Data was acknowledged: decision intervals have begun (see `onAck`). */
  private dataAcked = false;
  /** Delivery rates of the last decisions (bytes/s): a policer or shallow buffer drops, it never queues. */
  private readonly delivered: number[] = [];
  private fullPipeBps = 0;
  private roundsWithoutGrowth = 0;
  private decisionsAboveTarget = 0;
  /** Decisions in a row with a queue of half the target or more. */
  private decisionsQueued = 0;
  /** The standing queue (ms) of the last `competitorDecisions` decisions, oldest first. */
  private readonly recentQueuesMs: number[] = [];
  /** The best mean delivery rate over `capacityDecisions` decisions (bytes/s): the bottleneck's capacity as far as we know. */
  private capacityBps = 0;
  /**
   * The bottleneck's rate as far as we know (sent bytes/s; 0: unknown): what the path delivered when a
   * queue last stood (half the target or more), or at the end of startup.
   */
  private bottleneckBps = 0;
  /** A buffer overflowed since the last decision: the delay mode backs off on it once per RTT. */
  private congestionLossSeen = false;
  /**
   * Packets lost and sent (lost + acknowledged) in startup's intervals before a queue built, and after
   * startup until they number `lossSampleMinPackets`: the random-loss estimate's first sample.
   */
  private readonly lossSample = { lost: 0, packets: 0 };
  /** Packets lost since the last decision, and the long-run random loss rate (fraction) outside overflows. */
  private lostSinceUpdate = 0;
  private randomLossFraction = 0;
  /** The last decision's standing queue (ms), for the overflow test, stats and traces. */
  private lastQueueMs = 0;
  /** The previous interval's own reading (ms), before confirmation. */
  private previousIntervalQueueMs = 0;
  /**
   * The receiver is still starting the session (data sent on its ServerHello's credit): its ACKs wait on
   * that, so a queue or a stall in delivery says nothing about the path, and startup holds instead of
   * leaving. Bounded: that credit is all the data that can go before the receiver is ready.
   */
  private peerStarting = false;

  constructor(
    private readonly policy: RatePolicy,
    private bounds: RateBounds,
    initialBps: number,
  ) {
    this.bounds = { minBps: Math.max(bounds.minBps, Math.min(rateFloorBps, bounds.maxBps)), maxBps: bounds.maxBps };
    this.rateBps = policy === 'fixed' ? this.bounds.maxBps : clamp(initialBps, this.bounds.minBps, this.bounds.maxBps);
    // `low` has no startup: doubling next to a TCP flow in its own slow start cuts that short, and the
    // TCP flow then grows back for seconds while `low` holds what it took.
    this.modeNow = policy === 'fixed' || policy === 'low' ? 'delay' : 'startup';
  }

  /**
   * The receiver granted `creditBytes` before it was ready (see `peerStarting`). With the handshake's
   * round trip known, startup's first round sends that credit over one round trip (at most at
   * `firstFlightMaxBps`) if that is faster than the rate so far: the receiver has room for it, and at
   * 10 Mbit/s a 300 ms path took four more doublings to reach 200 Mbit/s. A cap on the rate, not on the
   * bytes: the longer the path, the more a round holds at the same risk to a slower bottleneck.
   */
  awaitPeer(creditBytes: number, handshakeRttMs: number | undefined): void {
    this.peerStarting = true;
    if (this.modeNow !== 'startup' || handshakeRttMs === undefined || handshakeRttMs <= 0) return;
    const firstFlightBps = Math.min((creditBytes * 1000) / handshakeRttMs, firstFlightMaxBps);
    this.rateBps = clamp(Math.max(this.rateBps, firstFlightBps), this.bounds.minBps, this.bounds.maxBps);
  }

  peerReady(): void {
    this.peerStarting = false;
  }

  get mode(): RateMode {
    return this.modeNow;
  }

  /**
   * The most bytes in flight the sender keeps: two round trips of the rate, and in startup, once the
   * path has delivered, `startupInflightGain` × that delivery (with the random loss it takes) × the min RTT.
   */
  inflightCapBytes(srttMs: number): number {
    const cap = (2 * this.rateBps * srttMs) / 1000;
    if (this.modeNow !== 'startup' || this.peerStarting || this.delivered.length === 0) return cap;
    const deliveredBps = this.sendingCapacityBps(Math.max(...this.delivered));
    return Math.min(cap, (startupInflightGain * deliveredBps * Math.max(this.minRttMs, decisionFloorMs)) / 1000);
  }

  /** Standing queueing delay (ms) at the last decision. */
  get queueDelayMs(): number {
    return this.lastQueueMs;
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

  /**
   * A packet sent at `sentAtMs` was declared lost: congestion when the queue stood above the target as it
   * happened. Losses of packets sent before the last cut are that cut's business, already answered.
   */
  onLoss(sentAtMs: number): void {
    if (sentAtMs < this.judgeSentFromMs) return;
    this.lostSinceUpdate += 1;
    if (this.modeNow === 'startup') return;
    // Both the standing queue of the last decision and the recent RTT: a stall inflates only the latter.
    const target = this.targetDelayMs();
    if (this.lastQueueMs > target && this.recentRttMs - this.minRttMs > target) this.congestionLossSeen = true;
  }

  /** What the bottleneck takes from us, in sent bytes/s: the delivery rate plus the random loss on the way. */
  private sendingCapacityBps(deliveredBps: number): number {
    return deliveredBps / (1 - Math.min(this.randomLossFraction, maxRandomLossShare));
  }

  /**
   * Above the target: a rate below what the bottleneck delivers by enough to drain the queue down to
   * half the target within about a base RTT (at most by half). From the delivery rate, not from our
   * rate: a queue means we sent above the bottleneck, and a cut that leaves us above it only slows the
   * queue's growth.
   */
  private drainingRate(queueMs: number, target: number, maxDeliveredBps: number): number {
    const drainShare = Math.min(maxDrainShare, (queueMs - target / 2) / Math.max(this.minRttMs, decisionFloorMs));
    const capacityBps = Math.min(this.rateBps, this.sendingCapacityBps(maxDeliveredBps));
    // Once drained, back to the bottleneck's rate at once rather than growing back from the trough; `low`
    // grows back: the queue may be another flow's, which it yields to.
    this.restoreBps = this.policy === 'low' ? 0 : capacityBps;
    return capacityBps * (1 - drainShare);
  }

  private sampleRtt(rttSampleMs: number): void {
    this.minRttMs = Math.min(this.minRttMs, rttSampleMs);
    this.recentRttMs = this.recentRttMs === 0 ? rttSampleMs : this.recentRttMs * 0.75 + rttSampleMs * 0.25;
  }

  /**
   * The hello exchange's round trip: the first RTT sample, and startup's first round (doubled as if the
   * data had waited a round trip for it). Not a decision: it delivered nothing, and as a delivery sample
   * of 0 it would bound startup's first rounds in flight to the floor.
   */
  onHandshake(rttMs: number): void {
    this.sampleRtt(rttMs);
    if (this.modeNow === 'startup') this.rateBps = Math.min(this.rateBps * 2, this.bounds.maxBps);
  }

  /** One RTT sample (ms) from an ACK, and the bytes it newly acknowledged. */
  onAck(nowMs: number, rttSampleMs: number, ackedBytes: number): void {
    this.sampleRtt(rttSampleMs);
    if (ackedBytes > 0 && !this.dataAcked) {
      // The first decision interval begins with the first data ACK: one before it delivered nothing by
      // construction, and startup doubled blind on it (sim, 300 ms: 168 → 335 Mbit/s before any ACK of
      // the first round) or, leaving, took that nothing for what the path delivers.
      this.dataAcked = true;
      this.lastUpdateMs = nowMs;
    }
    this.ackedSinceUpdate += ackedBytes;
    const judged = nowMs - rttSampleMs >= this.judgeSentFromMs;
    if (judged) this.judgedAckedSinceUpdate += ackedBytes;
    if (this.policy === 'fixed' || !judged || !this.dataAcked) return;
    this.intervalMinRttMs = Math.min(this.intervalMinRttMs, rttSampleMs);
    // Decide about once per RTT.
    const interval = Math.max(decisionFloorMs, this.recentRttMs);
    if (nowMs - this.lastUpdateMs < interval) return;
    const elapsedMs = nowMs - this.lastUpdateMs;
    const deliveredBps = (this.ackedSinceUpdate * 1000) / elapsedMs;
    this.lastUpdateMs = nowMs;
    this.ackedSinceUpdate = 0;
    const intervalQueueMs = this.intervalMinRttMs - this.minRttMs;
    this.intervalMinRttMs = Infinity;
    const rateBeforeBps = this.rateBps;
    // On a short path, outside startup, a queue counts once it stood through two intervals in a row: a
    // stall of sender or receiver longer than one interval (GC, S3 work on two shared cores) lifts every
    // sample of that interval, and on a 10 ms path each such reading halved the rate.
    const confirm = this.modeNow !== 'startup' && this.minRttMs < confirmBelowRttMs;
    const queueMs = confirm ? Math.min(intervalQueueMs, this.previousIntervalQueueMs) : intervalQueueMs;
    const previousQueueMs = this.previousIntervalQueueMs;
    this.previousIntervalQueueMs = intervalQueueMs;
    this.lastQueueMs = queueMs;
    this.recentQueuesMs.push(queueMs);
    if (this.recentQueuesMs.length > competitorDecisions) this.recentQueuesMs.shift();
    const target = this.targetDelayMs();

    // A buffer that overflows drops a burst: more of this interval's packets than the path's random loss
    // explains (4 standard deviations above its long-run rate, and 0.5 % of the packets).
    const n = this.lostSinceUpdate + this.judgedAckedSinceUpdate / packetBytesForTarget;
    this.judgedAckedSinceUpdate = 0;
    const p = this.randomLossFraction;
    // Not before the random-loss estimate rests on `lossSampleMinPackets`: a startup whose first round
    // already ran at the target (10 ms paths, on the credit) saw a queue from its first interval while the
    // engine started, left with an estimate of 0, and then read the path's ordinary loss as overflows
    // (bench:wan 10 ms / 5 %: × 0.7 cuts, 158.7 instead of 168.3 Mbit/s).
    const sampled = this.lossSample.packets >= lossSampleMinPackets;
    const overflow = sampled && lostAboveRandom(this.lostSinceUpdate, n, p, overflowMarginShare);
    if (this.modeNow !== 'startup' && overflow) this.congestionLossSeen = true;
    // In startup, a round that delivered no more than the best so far and lost far more than the path's
    // random loss: the rate passed the bottleneck and a buffer too shallow to show the queue (under half
    // the target) overflows. Waiting for three rounds without growth doubled the rate twice more into it
    // (sim, 32 MiB at 300 ms into 100 Mbit/s with a 30 ms buffer, target 1 Gbit/s: 2.2× the data sent).
    // And a round that lost more than `maxRandomLossShare` of its packets, with or without a sample: no
    // path's random loss is that high, but a first round sent on a big credit far past the bottleneck loses
    // that much. Into the sample, such a round read as 70 % random loss, and the overflows after it went
    // unanswered for seconds (sim, 32 MiB at 300 ms into 50 Mbit/s, target 1 Gbit/s: 2.7× the data sent).
    const startupOverflow =
      this.modeNow === 'startup' &&
      ((this.lossSample.packets >= startupLossSamplePackets &&
        deliveredBps < this.fullPipeBps * fullPipeGrowth &&
        lostAboveRandom(this.lostSinceUpdate, n, p, startupOverflowMarginShare)) ||
        (n >= startupLossSamplePackets && this.lostSinceUpdate > n * maxRandomLossShare));
    // Startup takes the share lost over all its intervals until its overshoot builds a queue (whose
    // overflow is not random): an estimate still short of the path's loss when startup ends reads the
    // ordinary loss of the next intervals as overflows (300 ms / 5 %: a × 0.7 cut seconds in). Later an
    // interval read as an overflow barely moves the estimate.
    const recentQueueMs = this.recentRttMs - this.minRttMs;
    const startupSampled = queueMs < target / 2 && recentQueueMs < Math.max(target / 4, sampleQueueFloorMs) && !startupOverflow;
    const intoSample = this.modeNow === 'startup' ? startupSampled : !sampled;
    if (intoSample) {
      this.lossSample.lost += this.lostSinceUpdate;
      this.lossSample.packets += n;
      this.randomLossFraction = this.lossSample.lost / Math.max(1, this.lossSample.packets);
    } else if (this.modeNow !== 'startup') {
      this.randomLossFraction += (this.lostSinceUpdate / Math.max(1, n) - p) * (overflow ? 1 / 64 : 1 / 16);
    }
    this.lostSinceUpdate = 0;

    this.delivered.push(deliveredBps);
    if (this.delivered.length > deliveryWindow) this.delivered.shift();
    const maxDeliveredBps = Math.max(...this.delivered);
    let recentDeliveredBps = 0;
    if (this.delivered.length >= capacityDecisions) {
      let sum = 0;
      for (let i = this.delivered.length - capacityDecisions; i < this.delivered.length; i += 1) sum += this.delivered[i]!;
      recentDeliveredBps = sum / capacityDecisions;
      this.capacityBps = Math.max(this.capacityBps, recentDeliveredBps);
    }

    if (this.modeNow === 'startup') {
      // The pipe is full when delivery stops growing, queue or no queue (BBR's full-pipe test).
      if (deliveredBps >= this.fullPipeBps * fullPipeGrowth) {
        this.fullPipeBps = deliveredBps;
        this.roundsWithoutGrowth = 0;
      } else {
        this.roundsWithoutGrowth += 1;
      }
      if (queueMs < target / 2 && this.roundsWithoutGrowth < 3 && !startupOverflow) {
        this.rateBps = Math.min(this.rateBps * 2, this.bounds.maxBps);
        return;
      }
      // Cold, the engine's session start held the first ACKs back; leaving startup on them drained to
      // the little delivered so far, and next to TCP CUBIC `fair` never grew back (bench:wan policy-fair
      // run alone: 0.3 % of the link in 5 of 6 runs).
      if (this.peerStarting) {
        this.roundsWithoutGrowth = 0;
        return;
      }
      // On a short path one interval's queue may be a stall (the engine starting the session while the
      // first data, sent on the ServerHello's credit, arrives): hold the rate, and leave only if the
      // queue stands through the next interval too. Leaving on it read the stall as the bottleneck and
      // drained down to the little the first intervals delivered (bench:wan 10 ms: 2.2 s ramps).
      if (this.minRttMs < confirmBelowRttMs && previousQueueMs < target / 2 && queueMs >= target / 2 && this.roundsWithoutGrowth < 3 && !startupOverflow) return;
      this.modeNow = 'delay';
      // Leave startup at what the path takes, not at the overshoot that built the queue: the best
      // recent interval, as one whose ACKs a stall held back (common right at the exit) delivers little.
      this.rateBps =
        this.roundsWithoutGrowth >= 3 ? maxDeliveredBps : startupOverflow ? this.sendingCapacityBps(maxDeliveredBps) : Math.min(this.rateBps, Math.max(this.sendingCapacityBps(maxDeliveredBps), this.rateBps * 0.5));
      this.bottleneckBps = this.sendingCapacityBps(maxDeliveredBps);
    } else if (queueMs >= target / 2) {
      // A queue stood, so the bottleneck was busy: what it delivered is its capacity.
      this.bottleneckBps = this.sendingCapacityBps(deliveredBps);
    } else if (this.sendingCapacityBps(recentDeliveredBps) > pastBottleneckShare * this.bottleneckBps) {
      this.bottleneckBps = 0;
    }

    this.decisionsAboveTarget = queueMs > target ? this.decisionsAboveTarget + 1 : 0;
    this.decisionsQueued = queueMs >= target / 2 ? this.decisionsQueued + 1 : 0;
    // The capacity in delivered bytes; before `capacityDecisions` decisions, the best single one.
    const capacityBps = this.capacityBps || maxDeliveredBps;
    const queueHeld = this.recentQueuesMs.length === competitorDecisions && queueMs >= Math.max(...this.recentQueuesMs) * queueHeldShare;
    // Or a queue near the target that stays although we came down to half the capacity: a loss-based
    // flow growing slowly (CUBIC near its last maximum) fills what we yield, and the queue hovers at the
    // target while our rate sinks (bench:wan policy-fair: 24 % of the link, 50 Mbit/s, queue 10–13 ms).
    // Not on short paths: there stalls of sender or receiver read as such queues, and the ACKs they
    // bunch up overstate the capacity (bench:wan 10 ms: `competing` alone, 159 instead of 169 Mbit/s).
    const yielded =
      (this.decisionsAboveTarget >= competitorDecisions && this.rateBps <= maxDeliveredBps * yieldedShare) ||
      (this.minRttMs >= confirmBelowRttMs && this.decisionsQueued >= competitorDecisions && this.rateBps <= capacityBps * competingShare);
    if (this.modeNow === 'delay' && this.policy !== 'low' && queueHeld && yielded) {
      this.modeNow = 'competing';
      this.rateBps = Math.max(this.rateBps, capacityBps * competingShare);
    } else if (this.modeNow === 'competing') {
      // Never below half the capacity; creep up at a fixed share of the capacity per second (a TCP flow
      // next to us grows slowly, and every overflow we cause sets it back) and back off on an overflow,
      // as a loss-based flow does. No draining: the queue is the competitor's, and the drains left us
      // at a floor measured next to it (perhaps far below half the link) or cycling in and out of it
      // (bench:wan policy-fair: 23–75 % of the link over 15 runs; with this, 45–57 % in 7).
      const floorBps = capacityBps * competingShare;
      if (this.congestionLossSeen) {
        this.rateBps = Math.max(floorBps, this.rateBps * overflowBackoff);
      } else {
        this.rateBps += capacityBps * competingCreepPerS * (elapsedMs / 1000);
        // Back near the whole capacity with a short queue: the competitor has left.
        if (this.rateBps >= capacityBps * aloneShare && queueMs < target / 2) this.modeNow = 'delay';
      }
    } else if (this.congestionLossSeen) {
      // The queue overflowed: back off as a loss-based flow would (random loss alone never lands here).
      this.rateBps *= overflowBackoff;
      this.restoreBps = 0;
    } else if (queueMs <= target) {
      // Grow in proportion to the headroom left: fast when the queue is empty, gently near the target,
      // and slowly near where a queue last showed.
      const headroom = 1 - queueMs / target;
      const nearBottleneck = this.bottleneckBps > 0 && this.rateBps >= nearBottleneckShare * this.bottleneckBps;
      const aheadOfDelivery = this.rateBps > pastBottleneckShare * this.sendingCapacityBps(deliveredBps);
      const growth = nearBottleneck || aheadOfDelivery ? probeGrowth : this.policy === 'low' ? lowGrowth : delayGrowth;
      this.rateBps = Math.max(this.restoreBps, this.rateBps + Math.max(this.rateBps * growth * headroom, 2_000));
      this.restoreBps = 0;
    } else {
      this.rateBps = this.drainingRate(queueMs, target, maxDeliveredBps);
    }
    this.congestionLossSeen = false;
    // Never far above what the path delivers: drops at a policer or a shallow buffer show no queueing
    // delay, only a delivery rate below the sending rate. 1.5× leaves random loss up to 33 % alone.
    if (maxDeliveredBps > 0) this.rateBps = Math.min(this.rateBps, maxDeliveredBps * deliveryHeadroom);
    this.rateBps = clamp(this.rateBps, this.bounds.minBps, this.bounds.maxBps);
    if (this.rateBps < rateBeforeBps) this.judgeSentFromMs = nowMs + this.minRttMs;
  }

  /** Nothing acknowledged for a probe timeout: the path may be gone; start over gently when it returns. */
  onPersistentCongestion(): void {
    if (this.policy === 'fixed') return;
    this.rateBps = clamp(this.rateBps / 2, this.bounds.minBps, this.bounds.maxBps);
    // Probe back up exponentially when the path returns (a blackout is not congestion).
    this.modeNow = this.policy === 'low' ? 'delay' : 'startup';
    this.fullPipeBps = 0;
    this.roundsWithoutGrowth = 0;
    this.decisionsAboveTarget = 0;
    this.decisionsQueued = 0;
    this.recentQueuesMs.length = 0;
    this.delivered.length = 0;
  }
}

/**
 * More packets lost than the random loss rate `p` explains: 4 standard deviations above it, plus a
 * margin (a share of the `n` packets), and at least 3.
 */
function lostAboveRandom(lost: number, n: number, p: number, marginShare: number): boolean {
  return lost >= 3 && lost > p * n + 4 * Math.sqrt(Math.max(p, 0.0005) * n) + marginShare * n;
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/**
 * Milliseconds of sending the bucket keeps when the sender wakes late. Releases are scheduled about every
 * millisecond, but a timer fires late (a busy event loop, Node's 1 ms floor): with a 1 ms bucket every
 * late wake-up loses tokens, and at 200 Mbit/s the sender kept barely half its rate; with 4 ms, 93–95 %
 * of it (bench:wan, two shared cores); with 10 ms, 97–98 %. The burst after a stall refills what the
 * bottleneck drained from its queue meanwhile.
 */
const catchUpMs = 10;

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
