import { describe, expect, it } from 'vitest';
import { RateController, type RateMode, type RatePolicy } from '../../protocol/rate';

/**
 * The rate controller alone over a fluid model of one bottleneck (1 ms steps, virtual time): a drop-tail
 * queue fed by our rate and, optionally, by a competitor that keeps the queue standing, random loss after
 * the queue. ACKs come back one base RTT plus the queue later.
 */
interface Path {
  capacityBps: number;
  baseRttMs: number;
  bufferMs: number;
  randomLoss: number;
  /** A loss-based competitor between these times holds the queue at this depth (ms) and takes its share. */
  competitor?: { fromMs: number; toMs: number; queueMs: number };
}

const packetBytes = 1400;

function run(policy: RatePolicy, path: Path, durationMs: number, maxBps = 2 * path.capacityBps, firstFlightCreditBytes = 0) {
  const rate = new RateController(policy, { minBps: 0, maxBps }, 1_250_000);
  if (firstFlightCreditBytes > 0) {
    // The handshake's sample, then startup's first round on the ServerHello's credit; the receiver is ready.
    rate.onHandshake(path.baseRttMs);
    rate.awaitPeer(firstFlightCreditBytes, path.baseRttMs);
    rate.peerReady();
  }
  let overflowBytes = 0;
  let queueBytes = 0;
  let lossCarry = 0;
  let overflowCarry = 0;
  let packetCarry = 0;
  const acks: { atMs: number; rttMs: number; bytes: number; lost: number }[] = [];
  const modes = new Set<RateMode>();
  const rates: { atMs: number; rateBps: number; mode: RateMode }[] = [];
  const linkBytesPerMs = path.capacityBps / 1000;
  for (let now = 0; now < durationMs; now += 1) {
    const c = path.competitor;
    const sentBytes = rate.rateBps / 1000;
    let deliveredBytes: number;
    let overflowPackets = 0;
    if (c !== undefined && now >= c.fromMs && now < c.toMs) {
      // The competitor keeps its standing queue whatever we send; we get through what we send, up to the link.
      queueBytes = c.queueMs * linkBytesPerMs;
      deliveredBytes = Math.min(sentBytes, linkBytesPerMs);
    } else {
      queueBytes += sentBytes;
      const bufferBytes = path.bufferMs * linkBytesPerMs;
      if (queueBytes > bufferBytes) {
        overflowPackets = (queueBytes - bufferBytes) / packetBytes;
        overflowBytes += queueBytes - bufferBytes;
        queueBytes = bufferBytes;
      }
      deliveredBytes = Math.min(queueBytes, linkBytesPerMs);
      queueBytes -= deliveredBytes;
    }
    const queueMs = queueBytes / linkBytesPerMs;
    packetCarry += deliveredBytes / packetBytes;
    const packets = Math.floor(packetCarry);
    packetCarry -= packets;
    // Random loss takes delivered packets; the overflow's never entered the queue.
    lossCarry += packets * path.randomLoss;
    const randomLost = Math.min(packets, Math.floor(lossCarry));
    lossCarry -= randomLost;
    overflowCarry += overflowPackets;
    const overflowLost = Math.floor(overflowCarry);
    overflowCarry -= overflowLost;
    const rttMs = path.baseRttMs + queueMs;
    acks.push({ atMs: now + rttMs, rttMs, bytes: (packets - randomLost) * packetBytes, lost: randomLost + overflowLost });
    while (acks.length > 0 && acks[0]!.atMs <= now) {
      const a = acks.shift()!;
      for (let i = 0; i < a.lost; i += 1) rate.onLoss(now - a.rttMs);
      rate.onAck(now, a.rttMs, a.bytes);
    }
    modes.add(rate.mode);
    if (now % 100 === 0) rates.push({ atMs: now, rateBps: rate.rateBps, mode: rate.mode });
  }
  const meanBps = (fromMs: number, toMs: number) => {
    const window = rates.filter((r) => r.atMs >= fromMs && r.atMs < toMs);
    return window.reduce((sum, r) => sum + r.rateBps, 0) / window.length;
  };
  return { rate, modes, rates, meanBps, overflowBytes };
}

const link = (overrides: Partial<Path> = {}): Path => ({ capacityBps: 12_500_000, baseRttMs: 100, bufferMs: 100, randomLoss: 0, ...overrides });

describe('rate control', () => {
  it('keeps a lone flow near the capacity through 5 % random loss, never taking it for a competitor', () => {
    const r = run('fair', link({ randomLoss: 0.05 }), 15_000);
    expect(r.modes.has('competing')).toBe(false);
    expect(r.meanBps(5_000, 15_000)).toBeGreaterThan(0.85 * 12_500_000);
  });

  it('backs off when the buffer overflows, so the queue does not sit at the buffer', () => {
    const r = run('fair', link({ bufferMs: 30, baseRttMs: 50 }), 10_000);
    const late = r.rates.filter((x) => x.atMs >= 3_000);
    expect(Math.max(...late.map((x) => x.rateBps))).toBeLessThan(2 * 12_500_000);
    expect(r.meanBps(3_000, 10_000)).toBeGreaterThan(0.7 * 12_500_000);
  });

  it('fair holds at least half the capacity next to a flow that keeps the queue full, and takes the link back when it leaves', () => {
    const r = run('fair', link({ baseRttMs: 50, bufferMs: 50, competitor: { fromMs: 4_000, toMs: 14_000, queueMs: 45 } }), 24_000);
    const during = r.rates.filter((x) => x.atMs >= 6_000 && x.atMs < 14_000);
    expect(during.every((x) => x.mode === 'competing')).toBe(true);
    expect(Math.min(...during.map((x) => x.rateBps))).toBeGreaterThanOrEqual(0.45 * 12_500_000);
    expect(r.rate.mode).toBe('delay');
    expect(r.meanBps(22_000, 24_000)).toBeGreaterThan(0.85 * 12_500_000);
  });

  it('fair competes, too, when the queue hovers around its target while a competitor takes what it yields', () => {
    // From a bench:wan policy-fair trace: 50 ms path, 200 Mbit/s; after 2 s alone, CUBIC near its last
    // maximum grows into what we yield (here down to 40 % of the link for us), and the standing queue
    // hovers around the target (12.5 ms).
    const capacityBps = 25_000_000;
    const queuesMs = [10.3, 11.7, 7.3, 12.3, 13.4, 11.5, 14.0, 16.4, 10.7, 11.2, 12.2, 12.6, 13.2, 7.8, 13.4, 13.4];
    const rate = new RateController('fair', { minBps: 0, maxBps: capacityBps }, 1_250_000);
    let lowestLateBps = Infinity;
    for (let now = 0; now < 10_000; now += 1) {
      const alone = now < 2_000;
      // One decision per ~62 ms interval: the same queue for all its samples.
      const queueMs = alone ? 0 : queuesMs[Math.floor(now / 62) % queuesMs.length]!;
      const ourShareBps = alone ? capacityBps : Math.max(0.4 * capacityBps, capacityBps * (1 - (now - 2_000) / 4_000));
      rate.onAck(now, 50 + queueMs, Math.min(rate.rateBps, ourShareBps) / 1000);
      if (now >= 8_000) lowestLateBps = Math.min(lowestLateBps, rate.rateBps);
    }
    expect(rate.mode).toBe('competing');
    expect(lowestLateBps).toBeGreaterThanOrEqual(0.45 * capacityBps);
  });

  it('holds startup, never leaves it, while the receiver is still starting the session', () => {
    // A 50 ms path; after the handshake's sample, the receiver's ACKs wait on its session start for
    // 700 ms (RTT samples 250 ms longer, little delivered), then it is ready.
    const capacityBps = 25_000_000;
    const runStall = (awaitPeer: boolean) => {
      const rate = new RateController('fair', { minBps: 0, maxBps: capacityBps }, 1_250_000);
      if (awaitPeer) rate.awaitPeer(2 * 1024 * 1024, undefined);
      rate.onHandshake(50);
      let lowestBps = Infinity;
      for (let now = 1; now < 1_500; now += 1) {
        if (now === 700) rate.peerReady();
        const stalled = now < 700;
        rate.onAck(now, stalled ? 300 : 50, stalled ? 100 : rate.rateBps / 1000);
        lowestBps = Math.min(lowestBps, rate.rateBps);
      }
      return { rate, lowestBps };
    };
    const held = runStall(true);
    expect(held.lowestBps).toBe(2_500_000);
    expect(held.rate.rateBps).toBe(capacityBps);
    // Without being told, startup leaves on the stall and drains to the little delivered (50 kB/s), and
    // grows back at a few % per decision.
    const unheld = runStall(false);
    expect(unheld.lowestBps).toBeLessThan(100_000);
    expect(unheld.rate.rateBps).toBeLessThan(0.01 * capacityBps);
  });

  it("sends startup's first round on the receiver's credit, spread over the handshake's round trip", () => {
    const rate = new RateController('fair', { minBps: 0, maxBps: 25_000_000 }, 1_250_000);
    rate.onHandshake(300);
    expect(rate.rateBps).toBe(2_500_000);
    rate.awaitPeer(2 * 1024 * 1024, 300);
    expect(rate.rateBps).toBeCloseTo((2 * 1024 * 1024 * 1000) / 300);
    // Within the bounds, and never faster than 2 MiB per 100 ms however big the credit: that round is blind.
    const short = new RateController('fair', { minBps: 0, maxBps: 12_500_000 }, 1_250_000);
    short.awaitPeer(64 * 1024 * 1024, 10);
    expect(short.rateBps).toBe(12_500_000);
    const big = new RateController('fair', { minBps: 0, maxBps: 1_000_000_000 }, 1_250_000);
    big.awaitPeer(64 * 1024 * 1024, 300);
    expect(big.rateBps).toBeCloseTo((2 * 1024 * 1024 * 1000) / 100);
    // On a long path the same rate spends more of the credit: 8 MiB over 400 ms.
    const long = new RateController('fair', { minBps: 0, maxBps: 1_000_000_000 }, 1_250_000);
    long.awaitPeer(8 * 1024 * 1024, 400);
    expect(long.rateBps).toBeCloseTo((8 * 1024 * 1024 * 1000) / 400);
  });

  it('leaves startup on a round that overflows a buffer too shallow to show a queue', () => {
    // 100 Mbit/s, 100 ms, a 10 ms buffer (the queue never reaches half the 25 ms target), 1 % random
    // loss; the target is 20 times the link.
    const path = { capacityBps: 12_500_000, baseRttMs: 100, bufferMs: 10, randomLoss: 0.01 };
    const r = run('fair', path, 5_000, 20 * path.capacityBps);
    const leftAtMs = r.rates.find((x) => x.mode !== 'startup')!.atMs;
    expect(leftAtMs).toBeLessThan(1_500);
    // What overflowed: the two rounds before the loss showed (5.3 MB); waiting for 3 rounds without
    // growth doubled into the buffer twice more (40 MB).
    expect(r.overflowBytes).toBeLessThan(8_000_000);
    expect(r.meanBps(3_000, 5_000)).toBeGreaterThan(0.8 * path.capacityBps);
  });

  it('decides nothing on the interval before the first data ACK: a blind first round is judged by its own ACKs', () => {
    // 50 Mbit/s, 300 ms, a 50 ms buffer, 5 % random loss, a 1 Gbit/s target: startup's first round on an
    // 8 MiB credit goes at 168 Mbit/s. The decision at the first ACK used to double it to 335 Mbit/s on an
    // interval that had delivered nothing yet.
    const path = { capacityBps: 6_250_000, baseRttMs: 300, bufferMs: 50, randomLoss: 0.05 };
    const r = run('fair', path, 15_000, 125_000_000, 8 * 1024 * 1024);
    expect(Math.max(...r.rates.map((x) => x.rateBps))).toBeCloseTo((2 * 1024 * 1024 * 1000) / 100);
    expect(r.rates.find((x) => x.mode !== 'startup')!.atMs).toBeLessThan(1_500);
    expect(r.meanBps(5_000, 15_000)).toBeGreaterThan(0.8 * path.capacityBps);
  });

  it('reads no ordinary loss as an overflow before its loss estimate rests on enough packets', () => {
    // A 10 ms path at the target (200 Mbit/s) with 5 % random loss. Startup's first round runs at the
    // target on the credit, and the receiver falls behind for its first 100 ms (queue readings of 20 ms):
    // startup leaves on them before any interval without a queue taught it the path's loss.
    const maxBps = 25_000_000;
    const rate = new RateController('fair', { minBps: 0, maxBps }, 1_250_000);
    rate.onHandshake(10);
    rate.awaitPeer(2 * 1024 * 1024, 10);
    rate.peerReady();
    let lossCarry = 0;
    let leftAtMs = -1;
    let lowestBps = Infinity;
    for (let now = 1; now < 1_000; now += 1) {
      const stalled = now < 100;
      const packets = ((stalled ? 0.5 : 1) * maxBps) / 1000 / 1400;
      lossCarry += packets * 0.05;
      for (; lossCarry >= 1; lossCarry -= 1) rate.onLoss(now - 10);
      rate.onAck(now, stalled ? 30 : 10, packets * 0.95 * 1400);
      if (leftAtMs < 0 && rate.mode !== 'startup') leftAtMs = now;
      if (leftAtMs >= 0) lowestBps = Math.min(lowestBps, rate.rateBps);
    }
    expect(leftAtMs).toBeLessThan(100);
    // Read as overflows, the loss cut the rate by 0.7 every other decision, down to the floor.
    expect(lowestBps).toBeGreaterThan(0.1 * maxBps);
    expect(rate.rateBps).toBe(maxBps);
  });

  it('low yields to the same flow instead of competing', () => {
    const r = run('low', link({ baseRttMs: 50, bufferMs: 50, competitor: { fromMs: 4_000, toMs: 14_000, queueMs: 45 } }), 14_000);
    expect(r.modes.has('competing')).toBe(false);
    expect(r.meanBps(10_000, 14_000)).toBeLessThan(0.05 * 12_500_000);
  });

  it('fixed sends at its target whatever the queue and the loss', () => {
    const r = run('fixed', link({ randomLoss: 0.1, bufferMs: 20 }), 3_000);
    expect(r.rates.every((x) => x.rateBps === 2 * 12_500_000)).toBe(true);
  });

  it('takes a queue on a 10 ms path only when it stands through two decision intervals in a row', () => {
    // RTT samples every millisecond, delivery equal to the rate (at its bound: no queue of its own);
    // `spikeMs` of them from 2 s on carry 25 ms more (a receiver that fell behind, GC, S3 work).
    const lowestDuring = (spikeMs: number) => {
      const rate = new RateController('fair', { minBps: 0, maxBps: 12_500_000 }, 12_500_000);
      let lowestBps = Infinity;
      for (let now = 0; now < 2_500; now += 1) {
        rate.onAck(now, now >= 2_000 && now < 2_000 + spikeMs ? 35 : 10, rate.rateBps / 1000);
        if (now >= 2_000) lowestBps = Math.min(lowestBps, rate.rateBps);
      }
      return lowestBps;
    };
    // 40 ms covers a whole decision interval (the controller without the two-interval rule halved here).
    expect(lowestDuring(40)).toBe(12_500_000);
    expect(lowestDuring(100)).toBeLessThan(0.8 * 12_500_000);
  });

  it('grows back fast when a stall ended startup below the bottleneck', () => {
    // A 10 ms path whose bottleneck is the bound (25 MB/s, 200 Mbit/s); delivery equals the rate. Once
    // startup passes 40 % of it, 100 ms of RTT samples carry 25 ms more: startup takes that for a queue
    // (it stands through two intervals; one such interval only holds startup's rate).
    const maxBps = 25_000_000;
    const rate = new RateController('fair', { minBps: 0, maxBps }, 1_250_000);
    let stallFromMs = Infinity;
    let exitBps = 0;
    let reachedAtMs = Infinity;
    for (let now = 0; now < 3_000 && reachedAtMs === Infinity; now += 1) {
      if (stallFromMs === Infinity && rate.rateBps >= 0.4 * maxBps) stallFromMs = now;
      rate.onAck(now, now >= stallFromMs && now < stallFromMs + 100 ? 35 : 10, rate.rateBps / 1000);
      if (rate.mode !== 'startup' && exitBps === 0) exitBps = rate.rateBps;
      if (exitBps > 0 && rate.rateBps >= 0.9 * maxBps) reachedAtMs = now;
    }
    expect(exitBps).toBeLessThan(0.6 * maxBps);
    // Growing at 2 % per decision (≥ 20 ms) all the way, as when the best delivery rate stood for the
    // bottleneck, took 874 ms after a 50 ms stall; forgetting the stall's reading once the path delivers
    // 10 % more, 374 ms then, and 420 ms after this 100 ms one.
    expect(reachedAtMs - stallFromMs).toBeLessThan(500);
  });
});
