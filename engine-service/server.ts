import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openToken, ticketSchema, type Keyring } from '../core/token';
import { addressKey, monotonicMs } from '../core/udp-driver';
import { CloseCode, Connection } from '../protocol/connection';
import { PacketType, destinationConnectionId, parseClientHello, protocolVersion } from '../protocol/packet';
import type { Logger } from './log';
import { EngineSession, earlyCreditBytes, type SessionDeps } from './session';

export interface EngineOptions {
  host: string;
  port: number;
  healthHost: string;
  healthPort: number;
  keyring: Keyring;
  /** Sessions at once, at most; further hellos are dropped (the client retries). */
  maxSessions: number;
  /** Unproven sessions (hello accepted, client not yet authenticated) at once, at most; default 32. */
  maxUnprovenSessions?: number;
  /** An unproven session is dropped silently after this long; default 5 s. */
  unprovenTimeoutMs?: number;
  /** How long SIGTERM waits for sessions to finish before closing them for a resume elsewhere. */
  drainTimeoutMs: number;
}

export interface EngineCounters {
  datagramsReceived: number;
  /** Every refused hello; then by reason. */
  hellosRefused: number;
  /** Not a ClientHello, or another protocol version. */
  hellosRefusedMalformed: number;
  /** The session table is full, or the engine is draining. */
  hellosRefusedBusy: number;
  /** The token does not open: forged, expired, unknown key, wrong kind. */
  hellosRefusedToken: number;
  /** Too many unproven sessions at once. */
  hellosRefusedUnproven: number;
  unknownConnection: number;
  sessionsStarted: number;
  sessionsEnded: number;
  /** Unproven sessions dropped: timed out, or replaced by a newer hello for the same transfer. */
  unprovenDropped: number;
}

type HelloRefusal = 'malformed' | 'busy' | 'token' | 'unproven';
const refusalCounters = {
  malformed: 'hellosRefusedMalformed',
  busy: 'hellosRefusedBusy',
  token: 'hellosRefusedToken',
  unproven: 'hellosRefusedUnproven',
} as const satisfies Record<HelloRefusal, keyof EngineCounters>;

/** Packets the sessions' cores dropped, ended sessions included. */
interface DropCounters {
  packetsDroppedForged: number;
  packetsDroppedReplayed: number;
  packetsDroppedMalformed: number;
}

/** At most one "hello refused" line per this long: a flood of bad hellos must not become a flood of logs. */
const refusedLogIntervalMs = 1_000;

interface Unproven {
  session: EngineSession;
  /** Its server and client connection ids (hex), its keys in the session tables. */
  id: string;
  clientId: string;
  timer: NodeJS.Timeout;
}

/**
 * The UDP engine: one socket, a session table keyed by connection id (so a client that changes address
 * keeps its session), and a health endpoint. A datagram that is not a valid hello with an openable token,
 * nor addressed to a live session, is dropped without a reply.
 *
 * A token is a bearer credential that anyone who saw it can replay. A session stays *unproven* until the
 * client's first authenticated packet (see EngineSession): unproven sessions are capped in all and to one
 * per transfer (a newer hello with another client connection id replaces the older one; an honest client
 * retransmits its hello with the same id, which reaches its own session), touch no storage, and are
 * dropped silently after `unprovenTimeoutMs`.
 */
export class EngineServer {
  private socket: Socket | undefined;
  private health: Server | undefined;
  private readonly sessions = new Map<string, EngineSession>();
  private readonly byClientId = new Map<string, EngineSession>();
  /** Unproven sessions by transfer id; at most `maxUnprovenSessions`. */
  private readonly unproven = new Map<string, Unproven>();
  private readonly endedDrops: DropCounters = { packetsDroppedForged: 0, packetsDroppedReplayed: 0, packetsDroppedMalformed: 0 };
  private refusedLog = { nextMs: 0, suppressed: 0 };
  private draining = false;
  readonly counters: EngineCounters = {
    datagramsReceived: 0,
    hellosRefused: 0,
    hellosRefusedMalformed: 0,
    hellosRefusedBusy: 0,
    hellosRefusedToken: 0,
    hellosRefusedUnproven: 0,
    unknownConnection: 0,
    sessionsStarted: 0,
    sessionsEnded: 0,
    unprovenDropped: 0,
  };

  constructor(
    private readonly options: EngineOptions,
    private readonly deps: SessionDeps,
    private readonly log: Logger,
  ) {}

  get udpPort(): number {
    return (this.socket!.address() as AddressInfo).port;
  }

  get healthPort(): number {
    return (this.health!.address() as AddressInfo).port;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** What /health reports besides its status. */
  private healthReport(): Record<string, number> {
    const drops = { ...this.endedDrops };
    for (const session of this.sessions.values()) addDrops(drops, session);
    return { sessions: this.sessions.size, unprovenSessions: this.unproven.size, ...this.counters, ...drops };
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: this.options.host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 8 * 1024 * 1024, sendBufferSize: 8 * 1024 * 1024 });
    socket.on('message', (bytes, rinfo) => this.onDatagram(bytes, addressKey(rinfo.address, rinfo.port)));
    socket.on('error', (error) => this.log.error('udp socket error', { error: String(error) }));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.options.port, this.options.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
    this.health = createServer((req, res) => {
      const ok = req.url === '/health' && !this.draining;
      res.writeHead(req.url === '/health' ? (ok ? 200 : 503) : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: this.draining ? 'draining' : 'ok', ...this.healthReport() }));
    });
    await new Promise<void>((resolve, reject) => {
      this.health!.once('error', reject);
      this.health!.listen(this.options.healthPort, this.options.healthHost, () => resolve());
    });
    this.log.info('engine listening', { udp: `${this.options.host}:${this.udpPort}`, health: `${this.options.healthHost}:${this.healthPort}` });
  }

  private onDatagram(bytes: Buffer, remote: string): void {
    this.counters.datagramsReceived += 1;
    if (bytes[0] === PacketType.clientHello) {
      this.onHello(bytes, remote);
      return;
    }
    const id = destinationConnectionId(bytes);
    const session = id === undefined ? undefined : this.sessions.get(id);
    if (!session) {
      this.counters.unknownConnection += 1;
      return;
    }
    try {
      session.driver.input(bytes, remote);
    } catch (error) {
      // One session's failure must not take the process (and every other session) down.
      this.log.error('session failed', { transferId: session.ticket.transferId, error: String((error as Error).stack ?? error) });
      session.driver.conn.close(CloseCode.internalError, 'internal error');
      session.driver.kick();
    }
  }

  private onHello(bytes: Buffer, remote: string): void {
    const hello = parseClientHello(bytes);
    if (!hello || hello.version !== protocolVersion) return this.refuseHello('malformed', remote, 'not a ClientHello of this protocol version');
    const clientId = hello.clientConnectionId.toString('hex');
    const existing = this.byClientId.get(clientId);
    if (existing) {
      existing.driver.input(bytes, remote);
      return;
    }
    if (this.draining || this.sessions.size >= this.options.maxSessions) {
      return this.refuseHello('busy', remote, this.draining ? 'the engine is draining' : `${this.sessions.size} sessions, the most this engine takes`);
    }
    let ticket;
    try {
      ticket = openToken(this.options.keyring, 'transfer', hello.token, ticketSchema, Math.floor(Date.now() / 1000));
    } catch (error) {
      // Forged, expired or foreign: no answer at all (no amplification, nothing learned).
      return this.refuseHello('token', remote, (error as Error).message);
    }
    const previous = this.unproven.get(ticket.transferId);
    const maxUnproven = this.options.maxUnprovenSessions ?? 32;
    if (!previous && this.unproven.size >= maxUnproven) {
      return this.refuseHello('unproven', remote, `${this.unproven.size} sessions wait for their client to prove it holds the keys`);
    }
    // The newest hello wins: a replayer must outpace the honest client's first round trip to block it.
    if (previous) this.dropUnproven(ticket.transferId, previous);

    const connectionId = randomBytes(8);
    const conn = Connection.accept(monotonicMs(), remote, hello, bytes.length, {
      secret: Buffer.from(ticket.sessionSecret, 'base64url'),
      connectionId,
      nonce: randomBytes(16),
      config: {
        ratePolicy: ticket.ratePolicy,
        maxRateKbps: ticket.maxRateKbps,
        minRateKbps: Math.min(ticket.minRateKbps, ticket.maxRateKbps),
        initialMaxDataBytes: ticket.direction === 'send' ? Math.min(earlyCreditBytes, this.deps.maxBufferedBytes) : 0,
      },
    });
    const id = connectionId.toString('hex');
    const transferId = ticket.transferId;
    const session: EngineSession = new EngineSession(ticket, conn, this.socket!, this.deps, {
      onProven: () => this.settleUnproven(transferId, session),
      onEnded: () => this.forget(id, clientId, session),
    });
    this.sessions.set(id, session);
    this.byClientId.set(clientId, session);
    const timer = setTimeout(() => {
      const entry = this.unproven.get(transferId);
      if (entry?.session === session) this.dropUnproven(transferId, entry);
    }, this.options.unprovenTimeoutMs ?? 5_000);
    timer.unref();
    this.unproven.set(transferId, { session, id, clientId, timer });
    this.counters.sessionsStarted += 1;
    session.driver.service();
  }

  private refuseHello(reason: HelloRefusal, remote: string, detail: string): void {
    this.counters.hellosRefused += 1;
    this.counters[refusalCounters[reason]] += 1;
    const nowMs = monotonicMs();
    if (nowMs < this.refusedLog.nextMs) {
      this.refusedLog.suppressed += 1;
      return;
    }
    const suppressed = this.refusedLog.suppressed;
    this.refusedLog = { nextMs: nowMs + refusedLogIntervalMs, suppressed: 0 };
    this.log.warn('hello refused', { remote, reason, detail, ...(suppressed > 0 ? { suppressedSinceLastLine: suppressed } : {}) });
  }

  /** The session's client proved it holds the keys: it no longer counts against the unproven caps. */
  private settleUnproven(transferId: string, session: EngineSession): void {
    const entry = this.unproven.get(transferId);
    if (entry?.session !== session) return;
    clearTimeout(entry.timer);
    this.unproven.delete(transferId);
  }

  private dropUnproven(transferId: string, entry: Unproven): void {
    clearTimeout(entry.timer);
    this.unproven.delete(transferId);
    this.counters.unprovenDropped += 1;
    entry.session.discard();
    this.forget(entry.id, entry.clientId, entry.session);
  }

  private forget(id: string, clientId: string, session: EngineSession): void {
    if (this.sessions.get(id) !== session) return;
    this.sessions.delete(id);
    this.byClientId.delete(clientId);
    this.settleUnproven(session.ticket.transferId, session);
    addDrops(this.endedDrops, session);
    this.counters.sessionsEnded += 1;
  }

  /** SIGTERM: no new sessions; running ones get `drainTimeoutMs` to finish, then are closed for a resume elsewhere. */
  async drain(): Promise<void> {
    this.draining = true;
    // Unproven sessions hold nothing: they go at once, without a CLOSE.
    for (const [transferId, entry] of this.unproven) this.dropUnproven(transferId, entry);
    const deadline = Date.now() + this.options.drainTimeoutMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const session of this.sessions.values()) session.shutdown();
    const closeDeadline = Date.now() + 2_000;
    while (this.sessions.size > 0 && Date.now() < closeDeadline) await new Promise((r) => setTimeout(r, 50));
    await this.stop();
  }

  async stop(): Promise<void> {
    for (const session of this.sessions.values()) session.driver.stop();
    for (const entry of this.unproven.values()) clearTimeout(entry.timer);
    this.unproven.clear();
    this.sessions.clear();
    this.byClientId.clear();
    await new Promise<void>((resolve) => (this.socket ? this.socket.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.health ? this.health.close(() => resolve()) : resolve()));
    this.socket = undefined;
    this.health = undefined;
  }
}

function addDrops(into: DropCounters, session: EngineSession): void {
  const stats = session.driver.conn.stats();
  into.packetsDroppedForged += stats.droppedForged;
  into.packetsDroppedReplayed += stats.droppedReplayed;
  into.packetsDroppedMalformed += stats.droppedMalformed;
}
