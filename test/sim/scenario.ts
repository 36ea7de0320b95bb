import { defaultConnectionConfig, type ConnectionConfig } from '../../protocol/connection';
import type { RatePolicy } from '../../protocol/rate';
import type { LinkParams } from './link';
import { Prng } from './prng';

const KiB = 1024;
const MiB = 1024 * KiB;

export type Direction = 'upload' | 'download';

/** What a run must end in. */
export type Expectation =
  /** All data delivered byte-exact, both sides closed with code 0, within the budget. */
  | { kind: 'complete' }
  /** The path dies for longer than the idle timeout: both sides close with idleTimeout (code 4). */
  | { kind: 'idle-timeout' };

export interface TimedMessage {
  atMs: number;
  sizeBytes: number;
}

/** Everything one run does, drawn from the seed (or written by hand for a regression). */
export interface Scenario {
  seed: number;
  name: string;
  /** upload: the client sends the data; download: the server does. */
  direction: Direction;
  /** Length of the data stream. */
  sizeBytes: number;
  /** Ranges the receiver already holds (resume): the sender skips them. Sorted, disjoint. */
  held: [number, number][];
  /** The sending application writes at most this much per `write`. */
  writeChunkBytes: number;
  /**
   * offer: the application offers a chunk and keeps what `write` did not take for the `writable` event.
   * exact: it writes only `writableBytes()` and waits for `writable` when that is 0.
   */
  writeMode: 'offer' | 'exact';
  /** Receiver memory: it lets the sender run this far past the contiguous prefix it holds. */
  windowBytes: number;
  /** Both sides' protocol configuration. */
  config: ConnectionConfig;
  c2s: LinkParams;
  s2c: LinkParams;
  /** Times the client's public address changes (NAT rebinding). */
  rebindAtMs: number[];
  /** The data sender calls pauseSending(true) at atMs and pauseSending(false) forMs later. */
  pauses: { atMs: number; forMs: number }[];
  /** Control messages each side sends (besides the receiver's final 'done'). */
  controls: { client: TimedMessage[]; server: TimedMessage[] };
  /** The sending application calls endWrites() after its last write (the engine and the SDK do). */
  endWrites: boolean;
  expect: Expectation;
  /** Virtual-time budget for the whole run. */
  budgetMs: number;
  /** The ideal time the budget was derived from (for the report). */
  idealMs: number;
}

export function payloadBytes(s: Pick<Scenario, 'sizeBytes' | 'held'>): number {
  return s.sizeBytes - s.held.reduce((sum, [a, b]) => sum + (b - a), 0);
}

/** The data path's bottleneck in Mbit/s: the link or the configured cap. */
function bottleneckMbps(s: Pick<Scenario, 'direction' | 'c2s' | 's2c' | 'config'>): number {
  const link = s.direction === 'upload' ? s.c2s : s.s2c;
  const cap = s.config.maxRateKbps / 1000;
  return link.rateMbps > 0 ? Math.min(link.rateMbps, cap) : cap;
}

/**
 * A generous bound on virtual time: 10 × an ideal (handshake, startup ramp, the bytes at the bottleneck,
 * the windows' RTT limits and the loss rate, the closing handshake) + blackouts + pauses + 30 s; plus the
 * keepalive interval for NAT rebinding (a quiet client is found again only when it next sends).
 */
/** A scenario before its budget is computed and it is named. */
export type ScenarioDraft = Omit<Scenario, 'budgetMs' | 'idealMs' | 'seed' | 'name'>;

/** A hand-built scenario: the draft, named, with its ideal time and budget. */
export function scenarioFrom(seed: number, name: string, draft: ScenarioDraft): Scenario {
  return { ...draft, seed, name, ...computeBudget(draft) };
}

/**
 * One upload and nothing else (no events, no extra control messages), `fair` up to `maxRateKbps`, over
 * `link` both ways: the tests change what they are about.
 */
export function plainUpload(link: LinkParams, sizeBytes: number, maxRateKbps: number): ScenarioDraft {
  return {
    direction: 'upload',
    sizeBytes,
    held: [],
    writeChunkBytes: 256 * KiB,
    writeMode: 'offer',
    windowBytes: 64 * MiB,
    config: { ...defaultConnectionConfig, ratePolicy: 'fair', maxRateKbps },
    c2s: link,
    s2c: { ...link },
    rebindAtMs: [],
    pauses: [],
    controls: { client: [], server: [] },
    endWrites: true,
    expect: { kind: 'complete' },
  };
}

export function computeBudget(s: ScenarioDraft): { budgetMs: number; idealMs: number } {
  const data = s.direction === 'upload' ? s.c2s : s.s2c;
  const back = s.direction === 'upload' ? s.s2c : s.c2s;
  const rttMs = Math.max(1, s.c2s.delayMs + s.s2c.delayMs + s.c2s.jitterMs + s.s2c.jitterMs);
  const loss = Math.min(0.9, 1 - (1 - data.loss) * (1 - data.corrupt));
  const bytesPerMs = Math.min(
    (bottleneckMbps(s) * 1000) / 8,
    s.windowBytes / rttMs,
    s.config.sendBufferBytes / rttMs,
  ) * (1 - loss);
  const startRate = Math.max(1, Math.min(s.config.initialRateKbps, s.config.maxRateKbps));
  const rampMs = rttMs * Math.max(0, Math.log2((bottleneckMbps(s) * 1000) / startRate));
  const payload = payloadBytes(s);
  const idealMs = 4 * rttMs + rampMs + payload / Math.max(bytesPerMs, 0.001);
  const blackouts = [...data.blackouts, ...back.blackouts].reduce((sum, b) => sum + (b.endMs - b.startMs), 0);
  const pauses = s.pauses.reduce((sum, p) => sum + p.forMs, 0);
  const rebinding = s.rebindAtMs.length > 0 ? s.config.idleTimeoutMs / 3 + 2_000 : 0;
  // 30 s of slack, and never less than the idle timeout + 10 s: a session that only ends by idle timeout
  // then fails as what it is (an unexpected idle timeout), not as a budget overrun.
  const slackMs = Math.max(30_000, s.config.idleTimeoutMs + 10_000);
  return { idealMs, budgetMs: 10 * idealMs + blackouts + pauses + rebinding + slackMs };
}

function drawSize(r: Prng, long: boolean): number {
  if (long) return Math.round(r.logRange(8 * MiB, 64 * MiB));
  return r.weighted<() => number>([
    [5, () => 0],
    [55, () => Math.round(r.logRange(1, 64 * KiB))],
    [28, () => Math.round(r.logRange(64 * KiB, 256 * KiB))],
    [9, () => Math.round(r.logRange(256 * KiB, 1 * MiB))],
    [3, () => Math.round(r.logRange(1 * MiB, 4 * MiB))],
  ])();
}

function drawLoss(r: Prng): number {
  return r.weighted<() => number>([
    [35, () => 0],
    [30, () => r.range(0, 0.02)],
    [20, () => r.range(0.02, 0.1)],
    [15, () => r.range(0.1, 0.3)],
  ])();
}

function drawLink(r: Prng, delayMs: number, rateMbps: number, queueMs: number, loss: number): LinkParams {
  const rtt = 2 * delayMs;
  return {
    delayMs,
    jitterMs: r.chance(0.5) ? r.range(0, Math.min(20, Math.max(0.5, rtt / 4))) : 0,
    loss,
    reorder: r.chance(0.3) ? r.range(0, 0.1) : 0,
    reorderMs: r.range(1, Math.max(2, rtt / 2)),
    duplicate: r.chance(0.2) ? r.range(0, 0.05) : 0,
    corrupt: r.chance(0.2) ? r.range(0, 0.02) : 0,
    rateMbps,
    queueMs,
    blackouts: [],
  };
}

/** A random scenario, every parameter drawn from the seed. `long`: 8–64 MiB on faster links. */
export function randomScenario(seed: number, long = false): Scenario {
  const r = new Prng(seed).fork('scenario');
  const direction: Direction = r.chance(0.5) ? 'upload' : 'download';
  const sizeBytes = drawSize(r, long);

  const rttMs = r.logRange(1, 600);
  const asym = r.chance(0.2) ? r.range(0.2, 0.8) : 0.5;
  const rateMbps = long ? r.logRange(20, 500) : r.logRange(1, 500);
  const queueMs = r.logRange(5, 200);
  const lossForward = drawLoss(r);
  const lossBack = r.chance(0.7) ? lossForward : drawLoss(r);
  const dataLink = drawLink(r, rttMs * asym, rateMbps, queueMs, lossForward);
  const backRate = r.chance(0.7) ? rateMbps : r.logRange(1, 500);
  const backLink = drawLink(r, rttMs * (1 - asym), backRate, r.chance(0.7) ? queueMs : r.logRange(5, 200), lossBack);
  const c2s = direction === 'upload' ? dataLink : backLink;
  const s2c = direction === 'upload' ? backLink : dataLink;

  const ratePolicy = r.weighted<RatePolicy>([[40, 'fair'], [25, 'high'], [15, 'low'], [20, 'fixed']]);
  // `fixed` sends at the configured rate whatever the path does: users set it near their link rate.
  const maxRateKbps = Math.round(
    ratePolicy === 'fixed'
      ? rateMbps * 1000 * r.range(0.5, 1.1)
      : r.chance(0.4)
        ? defaultConnectionConfig.maxRateKbps
        : r.logRange(1_000, 1_000_000),
  );
  const config: ConnectionConfig = {
    ...defaultConnectionConfig,
    ratePolicy,
    maxRateKbps,
    initialRateKbps: r.chance(0.7) ? defaultConnectionConfig.initialRateKbps : Math.round(r.logRange(1_000, 100_000)),
    sendBufferBytes: r.chance(0.3) ? defaultConnectionConfig.sendBufferBytes : Math.round(r.logRange(16 * KiB, 64 * MiB)),
  };
  const windowBytes = Math.round(r.logRange(64 * KiB, 16 * MiB));
  // The server's credit in its ServerHello (the engine grants one for uploads), within the receiver's window.
  config.initialMaxDataBytes = r.chance(0.5) ? 0 : Math.round(r.logRange(1400, windowBytes));

  // Held ranges (resume): the receiver already has them, the sender skips them.
  const held: [number, number][] = [];
  if (sizeBytes > 0 && r.chance(0.15)) {
    const cuts = new Set<number>();
    const n = r.int(1, 3);
    for (let i = 0; i < 2 * n; i += 1) cuts.add(r.int(0, sizeBytes));
    if (r.chance(0.3)) cuts.add(0);
    const sorted = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i + 1 < sorted.length; i += 2) if (sorted[i]! < sorted[i + 1]!) held.push([sorted[i]!, sorted[i + 1]!]);
  }

  const base = { seed, name: long ? 'long' : 'random', direction, sizeBytes, held, config, c2s, s2c, windowBytes };
  // Times for events are drawn across the transfer's likely span (its ideal time, at least 200 ms).
  const { idealMs } = computeBudget({
    ...base, writeChunkBytes: 1, writeMode: 'offer', rebindAtMs: [], pauses: [], controls: { client: [], server: [] }, endWrites: true, expect: { kind: 'complete' },
  });
  const spanMs = Math.max(200, idealMs);

  const blackoutCount = r.weighted([[80, 0], [14, 1], [6, 2]]);
  for (let i = 0; i < blackoutCount; i += 1) {
    const startMs = r.range(0, spanMs);
    const b = { startMs, endMs: startMs + r.range(500, 5_000) };
    const which = r.weighted([[70, 'both'], [15, 'c2s'], [15, 's2c']] as const);
    if (which !== 's2c') c2s.blackouts.push(b);
    if (which !== 'c2s') s2c.blackouts.push(b);
  }

  const rebindAtMs = r.chance(0.1) ? Array.from({ length: r.int(1, 2) }, () => r.range(0, spanMs)).sort((a, b) => a - b) : [];
  const pauses = r.chance(0.15)
    ? Array.from({ length: r.int(1, 2) }, () => ({
        atMs: r.range(0, spanMs),
        // Now and then longer than the idle timeout: keepalives must hold the session.
        forMs: r.chance(0.1) ? r.range(31_000, 45_000) : r.logRange(20, 5_000),
      }))
    : [];
  const drawMessages = (): TimedMessage[] =>
    Array.from({ length: r.weighted([[30, 0], [40, 1], [20, 3], [10, 6]]) }, () => ({
      atMs: r.range(0, spanMs),
      sizeBytes: r.chance(0.05) ? r.int(4 * KiB, 64 * KiB) : r.int(0, 4 * KiB),
    })).sort((a, b) => a.atMs - b.atMs);
  const controls = { client: drawMessages(), server: drawMessages() };

  const scenario = {
    ...base,
    writeChunkBytes: Math.round(r.logRange(512, 256 * KiB)),
    writeMode: r.chance(0.5) ? ('offer' as const) : ('exact' as const),
    rebindAtMs,
    pauses,
    controls,
    // Drawn last: earlier draws, and so every older seed's link and sizes, stay as they were.
    endWrites: r.chance(0.8),
    expect: { kind: 'complete' } as Expectation,
  };
  return { ...scenario, ...computeBudget(scenario) };
}

/** One-line description for tables and traces. */
export function describeScenario(s: Scenario): string {
  const data = s.direction === 'upload' ? s.c2s : s.s2c;
  const rtt = s.c2s.delayMs + s.s2c.delayMs;
  const blackouts = [
    ...s.c2s.blackouts.map((b) => `c2s@${b.startMs.toFixed(0)}+${(b.endMs - b.startMs).toFixed(0)}`),
    ...s.s2c.blackouts.map((b) => `s2c@${b.startMs.toFixed(0)}+${(b.endMs - b.startMs).toFixed(0)}`),
  ];
  const parts = [
    `${s.name}`,
    s.direction,
    `${fmtBytes(s.sizeBytes)}`,
    s.held.length ? `held=${s.held.map(([a, b]) => `${a}-${b}`).join(',')}` : '',
    `rtt=${rtt.toFixed(1)}ms`,
    `loss=${(data.loss * 100).toFixed(1)}%/${(((s.direction === 'upload' ? s.s2c : s.c2s).loss) * 100).toFixed(1)}%`,
    data.jitterMs ? `jitter=${data.jitterMs.toFixed(1)}ms` : '',
    data.reorder ? `reorder=${(data.reorder * 100).toFixed(1)}%` : '',
    data.duplicate ? `dup=${(data.duplicate * 100).toFixed(1)}%` : '',
    data.corrupt ? `corrupt=${(data.corrupt * 100).toFixed(2)}%` : '',
    `link=${data.rateMbps.toFixed(1)}Mbit/q${data.queueMs.toFixed(0)}ms`,
    `${s.config.ratePolicy}@${s.config.maxRateKbps}kbps`,
    `init=${s.config.initialRateKbps}kbps`,
    `win=${fmtBytes(s.windowBytes)}`,
    `credit=${fmtBytes(s.config.initialMaxDataBytes)}`,
    `sndbuf=${fmtBytes(s.config.sendBufferBytes)}`,
    `write=${s.writeMode}/${fmtBytes(s.writeChunkBytes)}${s.endWrites ? '' : '/no-end'}`,
    blackouts.length ? `blackouts=${blackouts.join(',')}` : '',
    s.rebindAtMs.length ? `rebind@${s.rebindAtMs.map((t) => t.toFixed(0)).join(',')}` : '',
    s.pauses.length ? `pause=${s.pauses.map((p) => `${p.atMs.toFixed(0)}+${p.forMs.toFixed(0)}`).join(',')}` : '',
    `ctl=${s.controls.client.length}/${s.controls.server.length}`,
    s.expect.kind !== 'complete' ? `expect=${s.expect.kind}` : '',
  ];
  return parts.filter(Boolean).join(' ');
}

export function fmtBytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(n % MiB === 0 ? 0 : 1)}MiB`;
  if (n >= KiB) return `${(n / KiB).toFixed(n % KiB === 0 ? 0 : 1)}KiB`;
  return `${n}B`;
}
