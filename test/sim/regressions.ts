import { defaultConnectionConfig } from '../../protocol/connection';
import { cleanLink, type LinkParams } from './link';
import { scenarioFrom, type Scenario, type ScenarioDraft } from './scenario';

const KiB = 1024;
const MiB = 1024 * KiB;

function base(): ScenarioDraft {
  return {
    direction: 'upload',
    sizeBytes: 256 * KiB,
    held: [],
    writeChunkBytes: 64 * KiB,
    writeMode: 'offer',
    windowBytes: 4 * MiB,
    config: { ...defaultConnectionConfig, maxRateKbps: 100_000 },
    c2s: withRate(cleanLink(25), 100, 50),
    s2c: withRate(cleanLink(25), 100, 50),
    rebindAtMs: [],
    pauses: [],
    controls: { client: [{ atMs: 0, sizeBytes: 300 }], server: [{ atMs: 10, sizeBytes: 2000 }] },
    endWrites: true,
    expect: { kind: 'complete' },
  };
}

function withRate(link: LinkParams, rateMbps: number, queueMs: number): LinkParams {
  return { ...link, rateMbps, queueMs };
}

function both(d: ScenarioDraft, change: (l: LinkParams) => LinkParams): ScenarioDraft {
  return { ...d, c2s: change(d.c2s), s2c: change(d.s2c) };
}

/** Hand-written scenarios: each names one hazard. The seed still drives ids, link draws and data. */
export const regressions: Record<string, (seed: number) => Scenario> = {
  'zero-bytes': (seed) => scenarioFrom(seed, 'zero-bytes', { ...base(), sizeBytes: 0 }),
  'zero-bytes-download': (seed) => scenarioFrom(seed, 'zero-bytes-download', { ...base(), direction: 'download', sizeBytes: 0 }),
  'one-byte': (seed) => scenarioFrom(seed, 'one-byte', { ...base(), sizeBytes: 1 }),
  'loss-30': (seed) => scenarioFrom(seed, 'loss-30', both({ ...base(), sizeBytes: 1 * MiB }, (l) => ({ ...l, loss: 0.3 }))),
  'loss-30-download-600ms': (seed) =>
    scenarioFrom(seed, 'loss-30-download-600ms', both({ ...base(), direction: 'download', sizeBytes: 512 * KiB }, (l) => ({ ...l, delayMs: 300, loss: 0.3 }))),
  'blackout-4s-mid-transfer': (seed) =>
    scenarioFrom(seed, 'blackout-4s-mid-transfer', both({ ...base(), sizeBytes: 4 * MiB, config: { ...base().config, maxRateKbps: 20_000 } }, (l) => ({ ...l, blackouts: [{ startMs: 700, endMs: 4_700 }] }))),
  'blackout-one-way': (seed) => {
    const d = { ...base(), direction: 'download' as const, sizeBytes: 1 * MiB, config: { ...base().config, maxRateKbps: 10_000 } };
    return scenarioFrom(seed, 'blackout-one-way', { ...d, c2s: { ...d.c2s, blackouts: [{ startMs: 300, endMs: 3_300 }] } });
  },
  'nat-rebinding-upload': (seed) => scenarioFrom(seed, 'nat-rebinding-upload', { ...base(), sizeBytes: 2 * MiB, config: { ...base().config, maxRateKbps: 20_000 }, rebindAtMs: [400] }),
  // The server (the sender of a download) closes after its last control message is acknowledged, and the
  // client's address changes just before that CLOSE reaches it: the quiet client's keepalive, 10 s later,
  // is the first packet from its new address; the server must still be waiting then.
  'rebinding-while-closing': (seed) =>
    scenarioFrom(seed, 'rebinding-while-closing', { ...base(), direction: 'download', sizeBytes: 31, controls: { client: [], server: [] }, c2s: cleanLink(2), s2c: cleanLink(2), rebindAtMs: [18] }),
  'nat-rebinding-download': (seed) =>
    scenarioFrom(seed, 'nat-rebinding-download', { ...base(), direction: 'download', sizeBytes: 2 * MiB, config: { ...base().config, maxRateKbps: 20_000 }, rebindAtMs: [400] }),
  'heavy-reordering': (seed) =>
    scenarioFrom(seed, 'heavy-reordering', both({ ...base(), sizeBytes: 1 * MiB }, (l) => ({ ...l, reorder: 0.3, reorderMs: 40, jitterMs: 5 }))),
  'duplication-and-corruption': (seed) =>
    scenarioFrom(seed, 'duplication-and-corruption', both({ ...base(), sizeBytes: 1 * MiB }, (l) => ({ ...l, duplicate: 0.1, corrupt: 0.05 }))),
  'resume-gaps': (seed) =>
    scenarioFrom(seed, 'resume-gaps', { ...base(), sizeBytes: 1 * MiB, held: [[0, 100_000], [300_000, 300_001], [900_000, 1 * MiB]] }),
  'tiny-windows': (seed) =>
    scenarioFrom(seed, 'tiny-windows', { ...base(), sizeBytes: 1 * MiB, windowBytes: 64 * KiB, config: { ...base().config, sendBufferBytes: 16 * KiB }, writeMode: 'exact', writeChunkBytes: 4 * KiB }),
  'exact-writes-fill-buffer': (seed) =>
    scenarioFrom(seed, 'exact-writes-fill-buffer', { ...base(), sizeBytes: 512 * KiB, config: { ...base().config, sendBufferBytes: 64 * KiB }, writeMode: 'exact', writeChunkBytes: 64 * KiB }),
  'pause-longer-than-idle-timeout': (seed) =>
    scenarioFrom(seed, 'pause-longer-than-idle-timeout', { ...base(), sizeBytes: 1 * MiB, config: { ...base().config, maxRateKbps: 10_000 }, pauses: [{ atMs: 300, forMs: 40_000 }] }),
  'shallow-queue-1mbit': (seed) =>
    scenarioFrom(seed, 'shallow-queue-1mbit', both({ ...base(), sizeBytes: 128 * KiB, config: { ...base().config, maxRateKbps: 1_000_000 } }, (l) => ({ ...l, rateMbps: 1, queueMs: 5 }))),
  'blackout-beyond-idle-timeout': (seed) =>
    scenarioFrom(seed, 'blackout-beyond-idle-timeout', {
      ...both({ ...base(), sizeBytes: 4 * MiB, config: { ...base().config, maxRateKbps: 10_000 } }, (l) => ({ ...l, blackouts: [{ startMs: 1_000, endMs: 60_000 }] })),
      expect: { kind: 'idle-timeout' },
    }),
};

/** A few big transfers for `--long`. */
export const longRegressions: Record<string, (seed: number) => Scenario> = {
  '32MiB-100ms-5pct': (seed) =>
    scenarioFrom(seed, '32MiB-100ms-5pct', both({ ...base(), sizeBytes: 32 * MiB, config: { ...defaultConnectionConfig, ratePolicy: 'fair' } }, (l) => ({ ...l, delayMs: 50, loss: 0.05, rateMbps: 100, queueMs: 50 }))),
  '32MiB-download-600ms-2pct': (seed) =>
    scenarioFrom(seed, '32MiB-download-600ms-2pct', both({ ...base(), direction: 'download', sizeBytes: 32 * MiB, windowBytes: 64 * MiB, config: { ...defaultConnectionConfig, ratePolicy: 'high' } }, (l) => ({ ...l, delayMs: 300, loss: 0.02, rateMbps: 200, queueMs: 100 }))),
  '64MiB-fixed-300mbit': (seed) =>
    scenarioFrom(seed, '64MiB-fixed-300mbit', both({ ...base(), sizeBytes: 64 * MiB, config: { ...defaultConnectionConfig, ratePolicy: 'fixed', maxRateKbps: 280_000 } }, (l) => ({ ...l, delayMs: 10, loss: 0.01, rateMbps: 300, queueMs: 30 }))),
};

