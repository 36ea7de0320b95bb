/**
 * The engine fuzzer's parts, shared by `bench/fuzz.ts` (a child process sends, see fuzz-sender.ts) and
 * `test/integration/engine-fuzz.test.ts` (sends in-process): a seeded PRNG, a UDP relay that sits between
 * an honest client and the engine and keeps copies of real packets, a generator of hostile datagrams
 * (random, mutated, replayed, forged hellos, garbage with the live session's connection id) and a paced
 * send loop.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { sealToken, type Keyring, type Ticket } from '../core/token';
import { connectionIdBytes, encodeClientHello, PacketType, protocolVersion, shortHeaderBytes } from '../protocol/packet';

// ── PRNG ────────────────────────────────────────────────────────────────────────────────────────────

/** xorshift128+ on two 32-bit halves' worth of doubles: fast, seeded, good enough to pick and mutate. */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // splitmix32 to spread the seed
    let x = seed >>> 0 || 1;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0 || 1;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** xoshiro128** : a uint32. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  fill(buffer: Buffer, start = 0, end = buffer.length): Buffer {
    let at = start;
    for (; at + 4 <= end; at += 4) buffer.writeUInt32LE(this.u32(), at);
    for (; at < end; at += 1) buffer[at] = this.u32() & 0xff;
    return buffer;
  }

  bytes(length: number): Buffer {
    return this.fill(Buffer.allocUnsafe(length));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ── Relay with capture ──────────────────────────────────────────────────────────────────────────────

export interface Capture {
  /** Client → engine short-header packets, newest last (a ring). */
  toEngine: Buffer[];
  /** Engine → client packets, newest last (a ring). */
  fromEngine: Buffer[];
  /** Every ClientHello the client sent (one per session, plus retries). */
  hellos: Buffer[];
  /** The engine-side connection ids of live honest sessions (the destination id of the client's packets). */
  serverConnectionIds: Buffer[];
}

/**
 * Forwards between one client and the engine and keeps copies of what passes: the client talks to
 * `port`, the engine sees the relay's other socket. Point the spec's `fasp_port` at `port`.
 */
export class UdpRelay {
  private readonly front: Socket = createSocket('udp4');
  private readonly back: Socket = createSocket('udp4');
  private client: RemoteInfo | undefined;
  private readonly ringSize: number;
  readonly capture: Capture = { toEngine: [], fromEngine: [], hellos: [], serverConnectionIds: [] };
  forwardedToEngine = 0;
  forwardedToClient = 0;
  /** Bumped on every capture, so a consumer can tell whether there is something new. */
  version = 0;

  constructor(
    private readonly engineHost: string,
    private readonly enginePort: number,
    options: { ringSize?: number } = {},
  ) {
    this.ringSize = options.ringSize ?? 2048;
  }

  /** Sees every client packet first (an on-path attacker's view); returning true keeps it from the engine (it is still captured). */
  withhold: ((bytes: Buffer) => boolean) | undefined;

  async start(): Promise<number> {
    this.front.on('message', (bytes, remote) => {
      this.client = remote;
      if (this.withhold?.(bytes)) {
        this.record(bytes, 'toEngine');
        return;
      }
      this.back.send(bytes, this.enginePort, this.engineHost);
      this.forwardedToEngine += 1;
      this.record(bytes, 'toEngine');
    });
    this.back.on('message', (bytes) => {
      if (!this.client) return;
      this.front.send(bytes, this.client.port, this.client.address);
      this.forwardedToClient += 1;
      this.record(bytes, 'fromEngine');
    });
    this.front.on('error', () => undefined);
    this.back.on('error', () => undefined);
    await new Promise<void>((resolve) => this.front.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => this.back.bind(0, '127.0.0.1', resolve));
    return this.port;
  }

  get port(): number {
    return this.front.address().port;
  }

  private record(bytes: Buffer, direction: 'toEngine' | 'fromEngine'): void {
    this.version += 1;
    if (direction === 'toEngine' && bytes[0] === PacketType.clientHello) {
      if (this.capture.hellos.length < 64) this.capture.hellos.push(bytes);
      return;
    }
    const ring = this.capture[direction];
    ring.push(bytes);
    if (ring.length > this.ringSize) ring.splice(0, ring.length - this.ringSize);
    if (direction === 'toEngine' && bytes.length >= shortHeaderBytes && (bytes[0]! & 0xf0) === PacketType.short) {
      const id = bytes.subarray(1, 1 + connectionIdBytes);
      if (!this.capture.serverConnectionIds.some((known) => known.equals(id))) {
        this.capture.serverConnectionIds.push(Buffer.from(id));
        if (this.capture.serverConnectionIds.length > 16) this.capture.serverConnectionIds.shift();
      }
    }
  }

  /** Forgets what was captured (so a fuzzer only works on the sessions that come next). */
  reset(): void {
    this.capture.toEngine.length = 0;
    this.capture.fromEngine.length = 0;
    this.capture.hellos.length = 0;
    this.capture.serverConnectionIds.length = 0;
    this.version += 1;
  }

  /** A copy of up to `max` recent packets of each kind, for a fuzzer in another process. */
  sample(max = 256): Capture {
    return {
      toEngine: this.capture.toEngine.slice(-max),
      fromEngine: this.capture.fromEngine.slice(-Math.ceil(max / 4)),
      hellos: this.capture.hellos.slice(-8),
      serverConnectionIds: [...this.capture.serverConnectionIds],
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.front, this.back].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

// ── Tokens a hostile sender might bring ─────────────────────────────────────────────────────────────

export interface FuzzTokens {
  /** Sealed with the engine's key, but expired. */
  expired: string[];
  /** Sealed with a key the engine does not hold, under the engine's key id (fails authentication). */
  forged: string[];
  /** Sealed under a key id the engine does not know. */
  unknownKey: string[];
}

/** Tokens for the hello categories: `ticket` is a real transfer's (so only expiry or the key is wrong). */
export function hostileTokens(keyring: Keyring, ticket: Ticket, foreignKeyring: Keyring, unknownKeyKeyring: Keyring): FuzzTokens {
  const nowSeconds = Math.floor(Date.now() / 1000);
  const count = 8;
  return {
    expired: Array.from({ length: count }, (_, i) => sealToken(keyring, 'transfer', { ...ticket, expiresAt: nowSeconds - 1 - i * 3600 }, randomBytes(12))),
    forged: Array.from({ length: count }, () => sealToken(foreignKeyring, 'transfer', ticket, randomBytes(12))),
    unknownKey: Array.from({ length: count }, () => sealToken(unknownKeyKeyring, 'transfer', ticket, randomBytes(12))),
  };
}

// ── Generator ───────────────────────────────────────────────────────────────────────────────────────

export const fuzzCategories = [
  'random',
  'random-short-header',
  'session-garbage',
  'session-garbage-plausible-pn',
  'bit-flip',
  'truncation',
  'extension',
  'replay',
  'engine-packet',
  'hello-garbage-token',
  'hello-forged-token',
  'hello-unknown-key-token',
  'hello-expired-token',
  'hello-mutated-token',
  'hello-malformed',
  'hello-replay',
] as const;
export type FuzzCategory = (typeof fuzzCategories)[number];

/** Relative weights; categories that need captured packets fall back to `random` until there are some. */
export const defaultWeights: Record<FuzzCategory, number> = {
  random: 14,
  'random-short-header': 8,
  'session-garbage': 14,
  'session-garbage-plausible-pn': 4,
  'bit-flip': 14,
  truncation: 7,
  extension: 7,
  replay: 10,
  'engine-packet': 2,
  'hello-garbage-token': 4,
  'hello-forged-token': 3,
  'hello-unknown-key-token': 2,
  'hello-expired-token': 3,
  'hello-mutated-token': 3,
  'hello-malformed': 3,
  'hello-replay': 1,
};

const maxDatagram = 1500;

export class FuzzGenerator {
  private readonly table: FuzzCategory[] = [];
  private capture: Capture = { toEngine: [], fromEngine: [], hellos: [], serverConnectionIds: [] };
  private honestToken: string | undefined;
  readonly counts = Object.fromEntries(fuzzCategories.map((c) => [c, 0])) as Record<FuzzCategory, number>;

  constructor(
    private readonly prng: Prng,
    private readonly tokens: FuzzTokens,
    weights: Record<FuzzCategory, number> = defaultWeights,
  ) {
    for (const category of fuzzCategories) for (let i = 0; i < weights[category]; i += 1) this.table.push(category);
  }

  /** New captured packets (the generator keeps the latest view). */
  update(capture: Capture): void {
    this.capture = capture;
    const hello = capture.hellos.at(-1);
    if (hello) {
      const length = hello.readUInt16BE(2 + connectionIdBytes + 16);
      this.honestToken = hello.subarray(4 + connectionIdBytes + 16, 4 + connectionIdBytes + 16 + length).toString('latin1');
    }
  }

  next(): { category: FuzzCategory; bytes: Buffer } {
    let category = this.prng.pick(this.table);
    let bytes = this.make(category);
    if (!bytes) {
      category = 'random';
      bytes = this.make('random')!;
    }
    this.counts[category] += 1;
    return { category, bytes };
  }

  private captured(): Buffer | undefined {
    const packets = this.capture.toEngine;
    return packets.length > 0 ? this.prng.pick(packets) : undefined;
  }

  private hello(token: string, options: { version?: number; clientConnectionId?: Buffer } = {}): Buffer {
    const bytes = encodeClientHello({
      version: protocolVersion,
      clientConnectionId: options.clientConnectionId ?? this.prng.bytes(connectionIdBytes),
      clientNonce: this.prng.bytes(16),
      token,
    });
    if (options.version !== undefined) bytes[1] = options.version;
    return bytes;
  }

  private make(category: FuzzCategory): Buffer | undefined {
    const p = this.prng;
    switch (category) {
      case 'random':
        return p.bytes(p.between(0, maxDatagram));
      case 'random-short-header': {
        const bytes = p.bytes(p.between(0, maxDatagram));
        if (bytes.length > 0) bytes[0] = PacketType.short | (bytes[0]! & 0x0f);
        return bytes;
      }
      case 'session-garbage':
      case 'session-garbage-plausible-pn': {
        const ids = this.capture.serverConnectionIds;
        if (ids.length === 0) return undefined;
        const bytes = p.bytes(p.between(shortHeaderBytes, maxDatagram));
        bytes[0] = PacketType.short | (p.int(2) ? 0x04 : 0);
        p.pick(ids).copy(bytes, 1);
        if (category === 'session-garbage-plausible-pn') {
          // A packet number near the live ones: past the replay check, so the AEAD has to refuse it.
          const recent = this.captured();
          const base = recent && recent.length >= shortHeaderBytes ? recent.readUIntBE(11, 6) : 0;
          bytes.writeUInt16BE(0, 9);
          bytes.writeUIntBE(Math.max(0, base + p.between(-64, 4096)), 11, 6);
        }
        return bytes;
      }
      case 'bit-flip': {
        const packet = this.captured();
        if (!packet || packet.length === 0) return undefined;
        const bytes = Buffer.from(packet);
        const flips = p.between(1, 8);
        for (let i = 0; i < flips; i += 1) {
          const bit = p.int(bytes.length * 8);
          bytes[bit >> 3]! ^= 1 << (bit & 7);
        }
        return bytes;
      }
      case 'truncation': {
        const packet = this.captured();
        if (!packet || packet.length === 0) return undefined;
        return Buffer.from(packet.subarray(0, p.int(packet.length)));
      }
      case 'extension': {
        const packet = this.captured();
        if (!packet) return undefined;
        return Buffer.concat([packet, p.bytes(p.between(1, Math.max(1, maxDatagram - packet.length)))]);
      }
      case 'replay':
        return this.captured();
      case 'engine-packet': {
        const packets = this.capture.fromEngine;
        return packets.length > 0 ? p.pick(packets) : undefined;
      }
      case 'hello-garbage-token':
        return this.hello(p.bytes(p.between(1, maxDatagram - 28)).toString('latin1'));
      case 'hello-forged-token':
        return this.hello(p.pick(this.tokens.forged));
      case 'hello-unknown-key-token':
        return this.hello(p.pick(this.tokens.unknownKey));
      case 'hello-expired-token':
        return this.hello(p.pick(this.tokens.expired));
      case 'hello-mutated-token': {
        // The honest token with one character changed: the AEAD (or the format check) must refuse it.
        const token = this.honestToken ?? p.pick(this.tokens.forged);
        // Never the last character: its low bits may be base64 padding that decodes to the same bytes.
        const at = p.int(token.length - 1);
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
        let replacement = p.pick([...alphabet]);
        if (replacement === token[at]) replacement = replacement === 'A' ? 'B' : 'A';
        return this.hello(token.slice(0, at) + replacement + token.slice(at + 1));
      }
      case 'hello-malformed': {
        // The honest token in a hello that is wrong otherwise. Never a well-formed hello with it: that
        // would open a session (the token is a bearer credential; see the token-replay phase of fuzz.ts).
        const token = this.honestToken ?? p.pick(this.tokens.forged);
        const variant = p.int(4);
        const bytes = this.hello(token, variant === 3 || p.int(2) ? { version: p.pick([0, 2, 3, 255]) } : {});
        if (variant === 0) return Buffer.from(bytes.subarray(0, p.between(1, 1199))); // unpadded: too short
        if (variant === 1) bytes.writeUInt16BE(p.between(bytes.length, 0xffff), 2 + connectionIdBytes + 16); // token past the end
        if (variant === 2) bytes.writeUInt16BE(0, 2 + connectionIdBytes + 16); // empty token
        return bytes; // variant 3: an unknown version
      }
      case 'hello-replay':
        // The newest session's own hello, from another address (a replay of a live session's hello).
        return this.capture.hellos.at(-1);
    }
  }
}

// ── Sending ─────────────────────────────────────────────────────────────────────────────────────────

export interface SendStats {
  sent: number;
  seconds: number;
  perSecond: number;
  /** Datagrams the engine sent back to the fuzzer's socket, and their bytes. */
  replies: number;
  replyBytes: number;
  /** Bytes the fuzzer sent (for the amplification check). */
  bytesSent: number;
  counts: Record<FuzzCategory, number>;
}

/**
 * Sends `count` datagrams from `generator` to host:port from a fresh socket, in batches that yield to the
 * event loop; `ratePerSecond` 0 sends as fast as the socket takes them. Counts what comes back.
 */
export async function sendFuzz(options: {
  host: string;
  port: number;
  count: number;
  generator: FuzzGenerator;
  ratePerSecond?: number;
  batch?: number;
  /** Called between batches (feed new captures to the generator here). */
  beforeBatch?: () => void;
  onProgress?: (sent: number) => void;
  signal?: AbortSignal;
}): Promise<SendStats> {
  const socket = createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
  let replies = 0;
  let replyBytes = 0;
  socket.on('message', (bytes) => {
    replies += 1;
    replyBytes += bytes.length;
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const batch = options.batch ?? 64;
  const rate = options.ratePerSecond ?? 0;
  const t0 = performance.now();
  let sent = 0;
  let bytesSent = 0;
  let seconds = 0;
  try {
    while (sent < options.count && !options.signal?.aborted) {
      options.beforeBatch?.();
      const n = Math.min(batch, options.count - sent);
      for (let i = 0; i < n; i += 1) {
        const { bytes } = options.generator.next();
        socket.send(bytes, options.port, options.host);
        bytesSent += bytes.length;
      }
      sent += n;
      options.onProgress?.(sent);
      // Pace: to the rate if one is set; else only wait when the kernel stops taking datagrams.
      const dueMs = rate > 0 ? (sent / rate) * 1000 - (performance.now() - t0) : 0;
      if (dueMs > 1) await new Promise((resolve) => setTimeout(resolve, dueMs));
      else if (socket.getSendQueueCount() > 256) await new Promise((resolve) => setTimeout(resolve, 1));
      else await new Promise((resolve) => setImmediate(resolve));
    }
    // Let the last datagrams leave and any late answers arrive.
    while (socket.getSendQueueCount() > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    seconds = (performance.now() - t0) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    socket.close();
  }
  return { sent, seconds, perSecond: sent / seconds, replies, replyBytes, bytesSent, counts: { ...options.generator.counts } };
}
