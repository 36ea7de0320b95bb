import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openToken, ticketSchema, type Keyring } from '../core/token';
import { addressKey, monotonicMs } from '../core/udp-driver';
import { CloseCode, Connection } from '../protocol/connection';
import { PacketType, destinationConnectionId, parseClientHello, protocolVersion } from '../protocol/packet';
import type { Logger } from './log';
import { EngineSession, type SessionDeps } from './session';

export interface EngineOptions {
  host: string;
  port: number;
  healthHost: string;
  healthPort: number;
  keyring: Keyring;
  /** Sessions at once, at most; further hellos are dropped (the client retries). */
  maxSessions: number;
  /** How long SIGTERM waits for sessions to finish before closing them for a resume elsewhere. */
  drainTimeoutMs: number;
}

export interface EngineCounters {
  datagramsReceived: number;
  hellosRefused: number;
  unknownConnection: number;
  sessionsStarted: number;
  sessionsEnded: number;
}

/**
 * The UDP engine: one socket, a session table keyed by connection id (so a client that changes address
 * keeps its session), and a health endpoint. A datagram that is not a valid hello with an openable token,
 * nor addressed to a live session, is dropped without a reply.
 */
export class EngineServer {
  private socket: Socket | undefined;
  private health: Server | undefined;
  private readonly sessions = new Map<string, EngineSession>();
  private readonly byClientId = new Map<string, EngineSession>();
  private draining = false;
  readonly counters: EngineCounters = { datagramsReceived: 0, hellosRefused: 0, unknownConnection: 0, sessionsStarted: 0, sessionsEnded: 0 };

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
      res.end(JSON.stringify({ status: this.draining ? 'draining' : 'ok', sessions: this.sessions.size, ...this.counters }));
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
    if (!hello || hello.version !== protocolVersion) {
      this.counters.hellosRefused += 1;
      return;
    }
    const clientId = hello.clientConnectionId.toString('hex');
    const existing = this.byClientId.get(clientId);
    if (existing) {
      existing.driver.input(bytes, remote);
      return;
    }
    if (this.draining || this.sessions.size >= this.options.maxSessions) {
      this.counters.hellosRefused += 1;
      return;
    }
    let ticket;
    try {
      ticket = openToken(this.options.keyring, 'transfer', hello.token, ticketSchema, Math.floor(Date.now() / 1000));
    } catch (error) {
      // Forged, expired or foreign: no answer at all (no amplification, nothing learned).
      this.counters.hellosRefused += 1;
      this.log.warn('hello refused', { remote, reason: (error as Error).message });
      return;
    }
    const connectionId = randomBytes(8);
    const conn = Connection.accept(monotonicMs(), remote, hello, bytes.length, {
      secret: Buffer.from(ticket.sessionSecret, 'base64url'),
      connectionId,
      nonce: randomBytes(16),
      config: {
        ratePolicy: ticket.ratePolicy,
        maxRateKbps: ticket.maxRateKbps,
        minRateKbps: Math.min(ticket.minRateKbps, ticket.maxRateKbps),
      },
    });
    const id = connectionId.toString('hex');
    const session = new EngineSession(ticket, conn, this.socket!, this.deps, () => {
      this.sessions.delete(id);
      this.byClientId.delete(clientId);
      this.counters.sessionsEnded += 1;
    });
    this.sessions.set(id, session);
    this.byClientId.set(clientId, session);
    this.counters.sessionsStarted += 1;
    session.driver.service();
  }

  /** SIGTERM: no new sessions; running ones get `drainTimeoutMs` to finish, then are closed for a resume elsewhere. */
  async drain(): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + this.options.drainTimeoutMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const session of this.sessions.values()) session.shutdown();
    const closeDeadline = Date.now() + 2_000;
    while (this.sessions.size > 0 && Date.now() < closeDeadline) await new Promise((r) => setTimeout(r, 50));
    await this.stop();
  }

  async stop(): Promise<void> {
    for (const session of this.sessions.values()) session.driver.stop();
    this.sessions.clear();
    this.byClientId.clear();
    await new Promise<void>((resolve) => (this.socket ? this.socket.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.health ? this.health.close(() => resolve()) : resolve()));
    this.socket = undefined;
    this.health = undefined;
  }
}
