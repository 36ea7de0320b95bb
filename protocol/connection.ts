import { deriveSessionKeys, nonceBytes, packetsPerKey, pathChallengeData, tagBytes, type PacketKey } from './keys';
import {
  FrameType,
  FrameWriter,
  PacketType,
  connectionIdBytes,
  encodeClientHello,
  keyPhaseBit,
  maxAckRanges,
  parseFrames,
  pathDataBytes,
  protocolVersion,
  serverHelloHeaderBytes,
  shortHeaderBytes,
  type ClientHello,
  type FrameVisitor,
} from './packet';
import { Pacer, RateController, kbpsToBps, type RateMode, type RatePolicy } from './rate';
import { RangeSet } from './ranges';

export interface ConnectionConfig {
  /** UDP payload size; 1400 fits any ordinary path. */
  maxDatagramBytes: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  ratePolicy: RatePolicy;
  maxRateKbps: number;
  minRateKbps: number;
  initialRateKbps: number;
  /** Sender: data written but not yet acknowledged, at most. */
  sendBufferBytes: number;
  /**
   * Server, as the data receiver: flow credit granted in the ServerHello (0: none until the application's
   * first setMaxData). The client may then send data with its first packets instead of a round trip later.
   */
  initialMaxDataBytes: number;
  /** Receiver: longest an ACK may wait. */
  maxAckDelayMs: number;
  /** Packets sent under one key before a key update (tests lower it to exercise updates). */
  packetsPerKey: number;
}

export const defaultConnectionConfig: ConnectionConfig = {
  maxDatagramBytes: 1400,
  idleTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  ratePolicy: 'fair',
  maxRateKbps: 1_000_000,
  minRateKbps: 0,
  initialRateKbps: 10_000,
  sendBufferBytes: 64 * 1024 * 1024,
  initialMaxDataBytes: 0,
  maxAckDelayMs: 5,
  packetsPerKey,
};

export const CloseCode = {
  done: 0,
  canceled: 1,
  protocolError: 2,
  flowControlError: 3,
  idleTimeout: 4,
  handshakeTimeout: 5,
  refused: 6,
  internalError: 7,
  shuttingDown: 8,
} as const;

export interface Transmit {
  remote: string;
  bytes: Buffer;
}

export type ConnectionEvent =
  | { type: 'connected' }
  /** New data bytes at a stream offset; every byte is delivered exactly once, in any order. */
  | { type: 'data'; offset: number; bytes: Buffer }
  /** A whole control message, in order. */
  | { type: 'control'; message: Buffer }
  /** Room in the send buffer again. */
  | { type: 'writable' }
  /** Server: the client proved it holds the session keys (its first authenticated packet). */
  | { type: 'authenticated' }
  /** The peer now talks from another address (NAT rebinding) and answered a path challenge there; replies follow it. */
  | { type: 'migrated'; remote: string }
  /** This side's CLOSE goes out (for `done`, once its control messages were delivered): what remains is the close handshake. */
  | { type: 'closing'; code: number; reason: string }
  | { type: 'closed'; code: number; reason: string; byPeer: boolean };

export interface ConnectionStats {
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number;
  /** Packets declared lost and acknowledged later (reordering). */
  spuriousLosses: number;
  /** Ack-eliciting packets the peer acknowledged: proof the path works in the sending direction. */
  packetsAcked: number;
  bytesSent: number;
  bytesReceived: number;
  dataBytesSent: number;
  dataBytesRetransmitted: number;
  dataBytesDelivered: number;
  /** Sender: data bytes the peer acknowledged (each once). */
  dataBytesAcked: number;
  droppedForged: number;
  droppedReplayed: number;
  droppedMalformed: number;
  srttMs: number;
  minRttMs: number;
  rateKbps: number;
  /** How the rate is being set: startup, keeping a short queue, or holding a share next to a buffer-filling flow. */
  rateMode: RateMode;
  /** Standing queueing delay at the rate controller's last decision. */
  queueDelayMs: number;
  bytesInFlight: number;
}

interface SentPacket {
  timeSentMs: number;
  sizeBytes: number;
  ackEliciting: boolean;
  /** Flat [start, end) pairs of data and control the packet carried, for retransmission. */
  data: number[] | undefined;
  control: number[] | undefined;
  maxData: boolean;
  state: 'inflight' | 'acked' | 'lost';
}

/** A candidate address for the peer, not yet validated. */
interface PathProbe {
  remote: string;
  challenge: Buffer;
  /** Authenticated bytes from it, and bytes sent to it: the amplification budget. */
  receivedBytes: number;
  sentBytes: number;
  /** When the challenge (next) goes out; Infinity: only when the peer next speaks from there. */
  dueMs: number;
  lastSentMs: number;
  attempts: number;
}

const packetThreshold = 3;
const timeThreshold = 9 / 8;
/**
 * Reordering (RACK, RFC 8985): a packet declared lost whose ACK comes later was only late. Each such one
 * widens the loss thresholds: the packet threshold to the reordering seen (at most this many packets),
 * and the time threshold by a quarter of the min RTT (at most one smoothed RTT). A lost packet's record
 * is kept this many smoothed RTTs to notice it.
 */
const maxReorderPackets = 1024;
const keepLostRtts = 2;
const initialRttMs = 100;
/**
 * Copies of re-sent blocks in the tail (`endWrites`), two per block, cost at most this share of the
 * stream; copies of blocks re-sent for the first time take at most `tailFirstCopyShare` of it, so a third
 * of the budget stays for blocks lost again.
 */
const tailCopyShare = 0.015;
const tailFirstCopyShare = 0.01;
const maxPtoMs = 2_000;
const ackEveryPackets = 16;
const maxTrackedPnRanges = 256;
/** Out-of-order control bytes held for reassembly, at most. */
const controlWindowBytes = 1024 * 1024;
const maxControlMessageBytes = 256 * 1024;
const helloRetryMs = 500;
/**
 * Each hello (ClientHello, ServerHello) goes out twice in a row: a lost one costs a retry timer (0.5–1 s)
 * and a copy 1.2 kB or 72 B. At 10 % loss each way a handshake then needs a retry about 2 % of the time,
 * not 19 %.
 */
const helloCopies = 2;
const amplificationFactor = 3;
/** PATH_CHALLENGEs sent on a timer to one candidate address; after that only a packet from it brings another. */
const maxPathChallenges = 3;
/** PATH_RESPONSEs owed at once, at most (further challenges are ignored: the peer repeats them). */
const maxPathResponses = 4;
const pathPacketBytes = shortHeaderBytes + 1 + pathDataBytes + tagBytes;

type State = 'handshake' | 'connected' | 'closing' | 'closed';

interface Side {
  role: 'client' | 'server';
  localConnectionId: Buffer;
  peerConnectionId: Buffer;
  secret: Uint8Array;
  config: ConnectionConfig;
}

/**
 * One Slipstream session, sans-IO: no socket, clock or randomness inside. Drive it with
 * `handleDatagram`/`handleTimeout`, then drain `pollTransmit`, `pollEvent` and arm a timer at `pollTimeout`.
 */
export class Connection implements FrameVisitor {
  readonly role: 'client' | 'server';
  readonly localConnectionId: Buffer;
  private peerConnectionId: Buffer;
  private readonly config: ConnectionConfig;
  private state: State;
  private remote: string;
  private nowMs = 0;

  private sendKey: PacketKey | undefined;
  private receiveKey: PacketKey | undefined;
  private receiveNextKey: PacketKey | undefined;
  private sendKeyPhase = 0;
  private receiveKeyPhase = 0;
  private packetsWithSendKey = 0;

  private readonly events: ConnectionEvent[] = [];
  private readonly stats_: ConnectionStats = {
    packetsSent: 0, packetsReceived: 0, packetsLost: 0, spuriousLosses: 0, packetsAcked: 0, bytesSent: 0, bytesReceived: 0, dataBytesSent: 0,
    dataBytesRetransmitted: 0, dataBytesDelivered: 0, dataBytesAcked: 0, droppedForged: 0, droppedReplayed: 0, droppedMalformed: 0,
    srttMs: 0, minRttMs: 0, rateKbps: 0, rateMode: 'startup', queueDelayMs: 0, bytesInFlight: 0,
  };

  // Handshake
  private clientHello: Buffer | undefined;
  private serverHello: Buffer | undefined;
  private helloDueMs = 0;
  private helloAttempts = 0;
  /** Copies of the hello just sent still to send (see `helloCopies`). */
  private helloCopiesLeft = 0;
  /** Client: when the first ClientHello went out, for the handshake's RTT sample. */
  private firstHelloSentMs = 0;
  private handshakeDeadlineMs = 0;
  private addressValidated: boolean;
  private bytesReceivedUnvalidated = 0;
  private bytesSentUnvalidated = 0;

  // Path validation (RFC 9000 §8.2): the newest packet from another address makes that address a
  // candidate, probed with a PATH_CHALLENGE; replies move there only once it echoes the challenge, so
  // a copied packet cannot redirect the session. Until then the candidate gets at most 3× what came from it.
  private pathKey: Buffer | undefined;
  private pathChallengesSent = 0;
  private pathProbe: PathProbe | undefined;
  private readonly pathResponses: { remote: string; data: Buffer }[] = [];
  /** The source address of the datagram being handled. */
  private packetRemote = '';

  // Packet numbers and recovery
  private nextPacketNumber = 0;
  private readonly sent: (SentPacket | undefined)[] = [];
  private sentBase = 0;
  /** Every packet number below this is settled (acknowledged, lost or not ack-eliciting). */
  private sentFloor = 0;
  private largestAcked = -1;
  private suspects: number[] = [];
  private lossTimeMs: number | undefined;
  private lastAckElicitingSentMs = 0;
  private ptoCount = 0;
  private bytesInFlight = 0;
  private srttMs = 0;
  private rttVarMs = initialRttMs / 2;
  private minRttMs = Infinity;
  /** Loss thresholds widened by reordering seen (see `maxReorderPackets`). */
  private reorderPackets = packetThreshold;
  private reorderWindowMs = 0;
  private readonly rate: RateController;
  private readonly pacer: Pacer;
  private probesDue = 0;

  // ACKs to send
  private readonly receivedPns = new RangeSet();
  private largestReceivedPn = -1;
  private largestReceivedAtMs = 0;
  private ackElicitingSinceAck = 0;
  private ackDueMs: number | undefined;

  // Data stream, sending side
  private readonly sendChunks: { offset: number; bytes: Uint8Array }[] = [];
  private readonly unsent = new RangeSet();
  private readonly retransmit = new RangeSet();
  /** Copies of blocks re-sent in the tail (see `endWrites`), sent after the retransmissions. */
  private readonly tailCopies = new RangeSet();
  /** The second copies of the same blocks, sent after the first copies. */
  private readonly tailSecondCopies = new RangeSet();
  /** What goes out before unsent data, first queue first: re-sends, then the tail's copies. */
  private readonly resendQueues: readonly RangeSet[] = [this.retransmit, this.tailCopies, this.tailSecondCopies];
  /** Blocks re-sent since the tail began: one re-sent again was lost twice, and gets a copy. */
  private readonly tailResent = new RangeSet();
  private tailCopiedBytes = 0;
  private readonly acked = new RangeSet();
  private writtenEnd = 0;
  private writesEnded = false;
  private bufferedBytes = 0;
  private peerMaxData: number;
  private sendingPaused = false;
  private wasBlockedOnBuffer = false;

  // Data stream, receiving side
  private readonly received = new RangeSet();
  private localMaxData: number;
  /** The limit last sent in a MAX_DATA frame. */
  private advertisedMaxData = 0;
  private maxDataDue = false;

  // Control stream
  private controlOut: Buffer = Buffer.alloc(0);
  private readonly controlUnsent = new RangeSet();
  private readonly controlRetransmit = new RangeSet();
  private readonly controlAcked = new RangeSet();
  private readonly controlSegments = new Map<number, Buffer>();
  private controlReadOffset = 0;
  private controlPending: Buffer = Buffer.alloc(0);

  // Liveness and closing
  private lastReceiveMs = 0;
  private lastSendMs = 0;
  private pingDue = false;
  private closeCode = 0;
  private closeReason = '';
  private closeDeadlineMs = 0;
  /** A `done` close waiting for the control stream to be acknowledged, until `deadlineMs`. */
  private closeAfterControl: { code: number; reason: string; deadlineMs: number } | undefined;
  private closeFrameDue = false;
  /** Closing: packet numbers that carried our CLOSE (an ACK of one ends the closing), and the next resend. */
  private readonly closePns: number[] = [];
  private closeRetryMs = Infinity;
  private closeRetries = 0;
  /** Closed by the peer's CLOSE: acknowledge it (once per CLOSE received), so the peer can stop. */
  private closedByPeer = false;
  private closeAckDue = false;

  // Per-packet scratch
  private readonly plain: Buffer;
  private readonly writer: FrameWriter;
  private packetAckEliciting = false;

  private constructor(now: number, remote: string, side: Side) {
    this.role = side.role;
    this.localConnectionId = side.localConnectionId;
    this.peerConnectionId = side.peerConnectionId;
    this.config = side.config;
    this.remote = remote;
    this.nowMs = now;
    this.lastReceiveMs = now;
    this.lastSendMs = now;
    this.state = side.role === 'client' ? 'handshake' : 'connected';
    this.addressValidated = side.role === 'client';
    // No data before the receiver's first MAX_DATA (a server's may come in its ServerHello): it decides
    // what it can hold (e.g. after resume).
    this.peerMaxData = 0;
    this.localMaxData = side.role === 'server' ? side.config.initialMaxDataBytes : 0;
    this.advertisedMaxData = this.localMaxData;
    this.rate = new RateController(
      side.config.ratePolicy,
      { minBps: kbpsToBps(side.config.minRateKbps), maxBps: kbpsToBps(side.config.maxRateKbps) },
      kbpsToBps(side.config.initialRateKbps),
    );
    this.pacer = new Pacer(side.config.maxDatagramBytes);
    this.plain = Buffer.alloc(side.config.maxDatagramBytes - shortHeaderBytes - tagBytes);
    this.writer = new FrameWriter(this.plain);
  }

  /** A client session: it sends the ClientHello with the token until the server answers. */
  static connect(
    now: number,
    remote: string,
    options: { token: string; secret: Uint8Array; connectionId: Buffer; nonce: Buffer; config?: Partial<ConnectionConfig> },
  ): Connection {
    const config = { ...defaultConnectionConfig, ...options.config };
    const conn = new Connection(now, remote, {
      role: 'client',
      localConnectionId: options.connectionId,
      peerConnectionId: Buffer.alloc(connectionIdBytes),
      secret: options.secret,
      config,
    });
    conn.clientNonce = options.nonce;
    conn.secret = options.secret;
    conn.clientHello = encodeClientHello({ version: protocolVersion, clientConnectionId: options.connectionId, clientNonce: options.nonce, token: options.token });
    conn.helloDueMs = now;
    conn.handshakeDeadlineMs = now + config.handshakeTimeoutMs;
    return conn;
  }

  /**
   * A server session for a ClientHello whose token the caller has opened (it yields `secret`). Keys are
   * ready at once; until the client proves it holds them, this side sends at most 3× what it received.
   */
  static accept(
    now: number,
    remote: string,
    hello: ClientHello,
    helloBytes: number,
    options: { secret: Uint8Array; connectionId: Buffer; nonce: Buffer; config?: Partial<ConnectionConfig> },
  ): Connection {
    const config = { ...defaultConnectionConfig, ...options.config };
    const conn = new Connection(now, remote, {
      role: 'server',
      localConnectionId: options.connectionId,
      peerConnectionId: hello.clientConnectionId,
      secret: options.secret,
      config,
    });
    const keys = deriveSessionKeys(options.secret, hello.clientNonce, options.nonce);
    conn.sendKey = keys.serverToClient;
    conn.receiveKey = keys.clientToServer;
    conn.receiveNextKey = keys.clientToServer.next();
    conn.pathKey = keys.path;
    conn.bytesReceivedUnvalidated = helloBytes;
    conn.serverHello = conn.buildServerHello(options.nonce);
    conn.events.push({ type: 'connected' });
    return conn;
  }

  private clientNonce: Buffer | undefined;
  private secret: Uint8Array | undefined;

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  get isConnected(): boolean {
    return this.state === 'connected';
  }

  /** Sender: the stream offset the peer's flow credit (MAX_DATA) lets this side send up to. */
  get sendLimit(): number {
    return this.peerMaxData;
  }

  get remoteAddress(): string {
    return this.remote;
  }

  stats(): ConnectionStats {
    this.stats_.srttMs = this.srttMs;
    this.stats_.minRttMs = Number.isFinite(this.minRttMs) ? this.minRttMs : 0;
    this.stats_.rateKbps = Math.round((this.rate.rateBps * 8) / 1000);
    this.stats_.rateMode = this.rate.mode;
    this.stats_.queueDelayMs = this.rate.queueDelayMs;
    this.stats_.bytesInFlight = this.bytesInFlight;
    return { ...this.stats_ };
  }

  // ── Commands ────────────────────────────────────────────────────────────────────────────────────

  /** Bytes `write` would accept now; when none, a `writable` event follows once acknowledgements free room. */
  writableBytes(): number {
    const room = Math.max(0, this.config.sendBufferBytes - this.bufferedBytes);
    if (room === 0) this.wasBlockedOnBuffer = true;
    return room;
  }

  /**
   * Queues data at a stream offset at or after everything written before (a gap is data the peer already
   * holds, e.g. on resume). Returns how many bytes were taken; the rest waits for a `writable` event.
   */
  write(offset: number, bytes: Uint8Array): number {
    if (offset < this.writtenEnd) throw new Error(`write at ${offset} is behind the written end ${this.writtenEnd}`);
    const take = Math.min(bytes.length, this.writableBytes());
    if (take < bytes.length) this.wasBlockedOnBuffer = true;
    if (take === 0) return 0;
    const chunk = take === bytes.length ? bytes : bytes.subarray(0, take);
    this.sendChunks.push({ offset, bytes: chunk });
    this.unsent.add(offset, offset + take);
    this.writtenEnd = offset + take;
    this.bufferedBytes += take;
    // A write that fills the buffer exactly (take === bytes.length) blocks the writer all the same.
    if (this.bufferedBytes >= this.config.sendBufferBytes) this.wasBlockedOnBuffer = true;
    return take;
  }

  /**
   * The application will write no more data. In the tail (every written byte went out once) nothing new
   * follows a re-sent block to reveal its loss: a block lost again was found only by the loss timer,
   * a round trip or more later, one after another. So a block re-sent since the tail began goes out
   * three times (the re-send and two copies), in different packets. Copies cost at most `tailCopyShare`
   * of the stream, copies of first re-sends at most `tailFirstCopyShare`, so blocks lost again keep a
   * share: copying every first re-send alone spent the budget on the many blocks that get through anyway
   * (sim, 32 MiB at 300 ms and 10 % loss each way, 16 seeds: 0.3 s sooner with second re-sends copied,
   * no sooner with first re-sends copied). Two copies instead of one: 160 MiB at 300 ms finished 140 ms
   * sooner at 5 % loss and 210 ms at 10 %, for 0.1–0.5 % more data.
   */
  endWrites(): void {
    this.writesEnded = true;
  }

  /** Queues one control message (reliable, ordered). */
  sendControl(message: Uint8Array): void {
    if (message.length > maxControlMessageBytes) throw new Error('control message too large');
    const framed = Buffer.allocUnsafe(4 + message.length);
    framed.writeUInt32BE(message.length, 0);
    framed.set(message, 4);
    const start = this.controlOut.length;
    this.controlOut = Buffer.concat([this.controlOut, framed]);
    this.controlUnsent.add(start, this.controlOut.length);
  }

  /**
   * Receiver: the peer may send data up to this stream offset (never lowered). The new limit is
   * advertised once the peer has used half of the credit it holds (as QUIC does), not on every call:
   * a receiver that raises it per packet would otherwise make every ACK an ack-eliciting packet.
   */
  setMaxData(offset: number): void {
    if (offset > this.localMaxData) this.localMaxData = offset;
    this.checkMaxDataDue();
  }

  /** Rechecked as data arrives too: a limit raised early may become worth advertising only later. */
  private checkMaxDataDue(): void {
    if (this.localMaxData <= this.advertisedMaxData) return;
    const receivedEnd = this.received.max ?? 0;
    if (this.localMaxData - this.advertisedMaxData >= this.advertisedMaxData - receivedEnd) this.maxDataDue = true;
  }

  /** Stops or restarts sending data (control, ACKs and keepalives go on). */
  pauseSending(paused: boolean): void {
    this.sendingPaused = paused;
  }

  /**
   * Closes the connection. `done` first waits (bounded as the CLOSE's own retries) until every control message sent was
   * acknowledged: the peer discards whatever arrives after a CLOSE, and a last `done` lost on the way
   * would leave it believing the transfer unfinished. Any other code closes at once.
   */
  close(code: number, reason: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (code === CloseCode.done && this.state === 'connected' && !this.controlDelivered()) {
      this.closeAfterControl ??= { code, reason, deadlineMs: this.nowMs + this.closeBoundMs() };
      return;
    }
    this.closeAfterControl = undefined;
    if (this.state === 'handshake') {
      this.closeCode = code;
      this.closeReason = reason;
      this.finishClose(false);
      return;
    }
    this.enterClosing(code, reason);
  }

  private enterClosing(code: number, reason: string): void {
    this.closeCode = code;
    this.closeReason = reason;
    this.events.push({ type: 'closing', code, reason });
    this.state = 'closing';
    this.closeFrameDue = true;
    // The peer acknowledges CLOSE; until then resend it on a backed-off timer, for at most this long
    // (so the peer does not sit out its idle timeout).
    this.closeDeadlineMs = this.nowMs + this.closeBoundMs();
    this.closeRetryMs = this.nowMs + this.ptoMs();
  }

  /**
   * How long each step of a close may wait for the peer: long enough to outlast an outage of a few
   * seconds, and longer than a quiet peer's keepalive interval (idle timeout / 3), whose keepalive may be
   * the first packet from a new address after a rebinding.
   */
  private closeBoundMs(): number {
    return this.config.idleTimeoutMs / 3 + 3 * this.ptoMs();
  }

  // ── Input ───────────────────────────────────────────────────────────────────────────────────────

  handleDatagram(now: number, remote: string, bytes: Buffer): void {
    this.nowMs = Math.max(this.nowMs, now);
    this.packetRemote = remote;
    if (this.state === 'closed' && !this.closedByPeer) return;
    this.stats_.bytesReceived += bytes.length;
    if (!this.addressValidated) this.bytesReceivedUnvalidated += bytes.length;
    const type = bytes[0];
    if (type === PacketType.clientHello) {
      // The client did not get our ServerHello: send it again (it is smaller than this hello).
      // Until the client is validated the newest hello's address is as good as the first: answer there
      // (a NAT may have rebound between two hellos). The amplification budget still bounds what we send.
      if (this.role === 'server' && !this.addressValidated && this.serverHello) {
        this.helloDueMs = now;
        this.remote = remote;
      }
      return;
    }
    if (type === PacketType.serverHello) {
      if (this.role === 'client' && this.state === 'handshake') this.handleServerHello(bytes);
      return;
    }
    if (type === undefined || (type & 0xf0) !== PacketType.short || bytes.length < shortHeaderBytes + tagBytes) {
      this.stats_.droppedMalformed += 1;
      return;
    }
    this.handleShortPacket(now, remote, bytes);
  }

  private buildServerHello(serverNonce: Buffer): Buffer {
    const header = Buffer.alloc(serverHelloHeaderBytes);
    let at = 0;
    header[at++] = PacketType.serverHello;
    header[at++] = protocolVersion;
    at += this.peerConnectionId.copy(header, at);
    at += this.localConnectionId.copy(header, at);
    at += serverNonce.copy(header, at);
    const pn = this.nextPacketNumber++;
    header.writeUInt16BE(0, at);
    header.writeUIntBE(pn, at + 2, 6);
    // PARAMS (7 bytes) and MAX_DATA (7 bytes).
    const w = new FrameWriter(Buffer.alloc(16));
    w.params(this.config.maxDatagramBytes, this.config.idleTimeoutMs);
    if (this.advertisedMaxData > 0) w.maxData(this.advertisedMaxData);
    const out = Buffer.alloc(header.length + w.at + tagBytes);
    header.copy(out);
    this.sendKey!.seal(pn, header, w.buf.subarray(0, w.at), out, header.length);
    this.sent.push(undefined);
    return out;
  }

  private handleServerHello(b: Buffer): void {
    if (b.length < serverHelloHeaderBytes + tagBytes || b[1] !== protocolVersion) {
      this.stats_.droppedMalformed += 1;
      return;
    }
    let at = 2;
    const dcid = b.subarray(at, (at += connectionIdBytes));
    if (!dcid.equals(this.localConnectionId)) {
      this.stats_.droppedMalformed += 1;
      return;
    }
    const serverCid = Buffer.from(b.subarray(at, (at += connectionIdBytes)));
    const serverNonce = b.subarray(at, (at += nonceBytes));
    const pn = b.readUIntBE(at + 2, 6);
    const header = b.subarray(0, serverHelloHeaderBytes);
    const keys = deriveSessionKeys(this.secret!, this.clientNonce!, serverNonce);
    const plain = keys.serverToClient.open(pn, header, b.subarray(serverHelloHeaderBytes));
    if (!plain) {
      this.stats_.droppedForged += 1;
      return;
    }
    this.sendKey = keys.clientToServer;
    this.receiveKey = keys.serverToClient;
    this.receiveNextKey = keys.serverToClient.next();
    this.pathKey = keys.path;
    this.peerConnectionId = serverCid;
    this.state = 'connected';
    this.clientHello = undefined;
    this.lastReceiveMs = this.nowMs;
    this.recordReceivedPacket(pn, true);
    this.events.push({ type: 'connected' });
    // The handshake is the first round trip, and startup's first round: data may go with the next
    // packet (on a server's credit in this ServerHello), and it goes at the rate it would have reached
    // had it waited a round trip for the manifest's ACK. Only an unambiguous sample: one hello sent.
    const handshakeRttMs = this.helloAttempts === 1 ? this.updateRtt(this.nowMs - this.firstHelloSentMs, 0) : undefined;
    if (handshakeRttMs !== undefined) this.rate.onHandshake(handshakeRttMs);
    this.packetAckEliciting = false;
    if (!parseFrames(plain, this)) this.protocolError('malformed ServerHello');
    // Credit in the ServerHello: the server is still starting the session (resume state, checks) while
    // the first data arrives, and its ACKs wait on that. Its next MAX_DATA says it is ready.
    if (this.peerMaxData > 0) this.rate.awaitPeer(this.peerMaxData, handshakeRttMs);
    // Answer at once: the ACK proves to the server that we hold the keys.
    this.ackDueMs = this.nowMs;
  }

  private handleShortPacket(now: number, remote: string, b: Buffer): void {
    if (!this.receiveKey || this.state === 'handshake') {
      this.stats_.droppedForged += 1;
      return;
    }
    if (!b.subarray(1, 1 + connectionIdBytes).equals(this.localConnectionId) || b.readUInt16BE(9) !== 0) {
      this.stats_.droppedMalformed += 1;
      return;
    }
    const pn = b.readUIntBE(11, 6);
    const floor = this.receivedPns.min ?? 0;
    if (this.receivedPns.has(pn) || (this.receivedPns.count >= maxTrackedPnRanges && pn < floor)) {
      this.stats_.droppedReplayed += 1;
      return;
    }
    const header = b.subarray(0, shortHeaderBytes);
    const phase = (b[0]! & keyPhaseBit) !== 0 ? 1 : 0;
    let plain: Buffer | undefined;
    if (phase === this.receiveKeyPhase) {
      plain = this.receiveKey.open(pn, header, b.subarray(shortHeaderBytes));
    } else if (pn > this.largestReceivedPn) {
      plain = this.receiveNextKey!.open(pn, header, b.subarray(shortHeaderBytes));
      if (plain) {
        this.receiveKey = this.receiveNextKey!;
        this.receiveNextKey = this.receiveKey.next();
        this.receiveKeyPhase = phase;
      }
    }
    if (!plain) {
      this.stats_.droppedForged += 1;
      return;
    }
    this.stats_.packetsReceived += 1;
    if (this.state === 'closed') {
      // Closed by the peer, which is still sending (a resent CLOSE: our ACK was lost): ACK it again.
      this.receivedPns.add(pn, pn + 1);
      this.closeAckDue = true;
      return;
    }
    this.lastReceiveMs = now;
    if (!this.addressValidated) {
      // The first packet that opens: the client holds the keys, so it got our ServerHello, which went to
      // `remote` — that address is validated too. Until now this could have been a replayed hello.
      this.addressValidated = true;
      this.events.push({ type: 'authenticated' });
      // What we sent so far may have reached a client without keys (a lost ServerHello): it dropped
      // it. Send it again now rather than on probe timeouts that backed off meanwhile.
      for (const packet of this.sent) if (packet?.state === 'inflight' && packet.ackEliciting) this.sendAgain(packet);
      this.ptoCount = 0;
    }
    this.notePath(remote, pn, b.length);
    this.packetAckEliciting = false;
    if (!parseFrames(plain, this)) {
      this.protocolError('malformed frame');
      return;
    }
    this.recordReceivedPacket(pn, this.packetAckEliciting);
    // Closing: the peer is still talking, so our CLOSE was lost (or is in flight): send it again.
    // One small CLOSE per authenticated packet received: never more than the peer sends. A peer that
    // talks is alive: give the CLOSE time to reach it (after a rebinding, through a path check).
    if (this.state === 'closing') {
      this.closeFrameDue = true;
      this.closeDeadlineMs = Math.max(this.closeDeadlineMs, this.nowMs + 3 * this.ptoMs());
    }
  }

  private recordReceivedPacket(pn: number, ackEliciting: boolean): void {
    const outOfOrder = pn < this.largestReceivedPn;
    this.receivedPns.add(pn, pn + 1);
    this.receivedPns.trimTo(maxTrackedPnRanges);
    if (pn > this.largestReceivedPn) {
      this.largestReceivedPn = pn;
      this.largestReceivedAtMs = this.nowMs;
    }
    if (!ackEliciting) return;
    this.ackElicitingSinceAck += 1;
    if (this.ackElicitingSinceAck >= ackEveryPackets || outOfOrder) this.ackDueMs = this.nowMs;
    else this.ackDueMs ??= this.nowMs + this.config.maxAckDelayMs;
  }

  private protocolError(reason: string): void {
    this.stats_.droppedMalformed += 1;
    this.close(CloseCode.protocolError, reason);
  }

  /** An authenticated packet `pn` of `bytes` came from `remote`: is that a new path to validate? */
  private notePath(remote: string, pn: number, bytes: number): void {
    const newest = pn > this.largestReceivedPn;
    const probe = this.pathProbe;
    if (remote === this.remote) {
      // The peer still talks from here: a candidate (say, a copy that raced ahead of this packet) is moot.
      if (newest) this.pathProbe = undefined;
      return;
    }
    if (probe?.remote === remote) {
      probe.receivedBytes += bytes;
      // Challenged and not answered within a PTO: the peer speaking from there brings the next try.
      if (probe.dueMs === Infinity && this.nowMs >= probe.lastSentMs + this.ptoMs()) probe.dueMs = this.nowMs;
      return;
    }
    // A late packet from an address the peer left is no reason to probe it.
    if (!newest) return;
    this.pathProbe = {
      remote,
      challenge: pathChallengeData(this.pathKey!, this.pathChallengesSent++),
      receivedBytes: bytes,
      sentBytes: 0,
      dueMs: this.nowMs,
      lastSentMs: -Infinity,
      attempts: 0,
    };
  }

  // ── Frames (FrameVisitor) ───────────────────────────────────────────────────────────────────────

  ping(): void {
    this.packetAckEliciting = true;
  }

  params(): void {
    this.packetAckEliciting = true;
  }

  /** Answered on the path the challenge came by, not the session's (RFC 9000 §8.2.2). */
  pathChallenge(data: Buffer): void {
    if (this.pathResponses.length < maxPathResponses) this.pathResponses.push({ remote: this.packetRemote, data: Buffer.from(data) });
  }

  pathResponse(data: Buffer): void {
    const probe = this.pathProbe;
    // Only an answer from the probed address validates it: a copy of the answer sent from elsewhere does not.
    if (!probe || probe.remote !== this.packetRemote || !probe.challenge.equals(data)) return;
    this.pathProbe = undefined;
    this.remote = probe.remote;
    this.events.push({ type: 'migrated', remote: probe.remote });
  }

  maxData(offset: number): void {
    this.packetAckEliciting = true;
    if (offset <= this.peerMaxData) return;
    if (this.peerMaxData > 0) this.rate.peerReady();
    this.peerMaxData = offset;
  }

  closeFrame(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.closeCode = code;
    this.closeReason = reason;
    this.closedByPeer = true;
    this.closeAckDue = true;
    this.finishClose(true);
  }

  data(offset: number, bytes: Buffer): void {
    this.packetAckEliciting = true;
    const end = offset + bytes.length;
    if (end > this.localMaxData) {
      this.close(CloseCode.flowControlError, `data beyond the flow-control limit (${end} > ${this.localMaxData})`);
      return;
    }
    if (this.received.covers(offset, end)) return;
    // Deliver only what was not delivered before (a retransmission may overlap an earlier copy).
    for (const [start, stop] of this.received.gaps(offset, end)) {
      this.stats_.dataBytesDelivered += stop - start;
      this.events.push({ type: 'data', offset: start, bytes: bytes.subarray(start - offset, stop - offset) });
    }
    this.received.add(offset, end);
    this.checkMaxDataDue();
  }

  control(offset: number, bytes: Buffer): void {
    this.packetAckEliciting = true;
    const end = offset + bytes.length;
    if (end <= this.controlReadOffset) return;
    if (end > this.controlReadOffset + controlWindowBytes) return;
    this.controlSegments.set(offset, bytes);
    // Deliver every segment that now continues the ordered stream.
    for (;;) {
      let progressed = false;
      for (const [segOffset, seg] of this.controlSegments) {
        const segEnd = segOffset + seg.length;
        if (segEnd <= this.controlReadOffset) {
          this.controlSegments.delete(segOffset);
          continue;
        }
        if (segOffset <= this.controlReadOffset) {
          const fresh = seg.subarray(this.controlReadOffset - segOffset);
          this.controlPending = this.controlPending.length === 0 ? Buffer.from(fresh) : Buffer.concat([this.controlPending, fresh]);
          this.controlReadOffset = segEnd;
          this.controlSegments.delete(segOffset);
          progressed = true;
        }
      }
      if (!progressed) break;
    }
    while (this.controlPending.length >= 4) {
      const length = this.controlPending.readUInt32BE(0);
      if (length > maxControlMessageBytes) {
        this.protocolError('control message too large');
        return;
      }
      if (this.controlPending.length < 4 + length) break;
      this.events.push({ type: 'control', message: this.controlPending.subarray(4, 4 + length) });
      this.controlPending = this.controlPending.subarray(4 + length);
    }
  }

  ack(ackDelayUs: number, ranges: [number, number][]): void {
    if (this.state === 'closing') {
      // The peer got our CLOSE: done.
      if (this.closePns.some((pn) => ranges.some(([start, end]) => pn >= start && pn < end))) this.finishClose(false);
      return;
    }
    const now = this.nowMs;
    const largest = ranges[0]![1] - 1;
    if (largest >= this.nextPacketNumber) {
      this.protocolError('ACK of a packet never sent');
      return;
    }
    let newlyAckedBytes = 0;
    let largestNewlyAcked: SentPacket | undefined;
    let largestNewlyAckedPn = -1;
    let ackElicitingAcked = false;
    for (const [start, end] of ranges) {
      // ACK ranges repeat old, settled packets: start at the floor, not at the ranges' starts.
      for (let pn = Math.max(start, this.sentFloor); pn < end; pn += 1) {
        const packet = this.sent[pn - this.sentBase];
        if (!packet || packet.state === 'acked') continue;
        if (packet.state === 'lost') this.onSpuriousLoss(pn);
        if (packet.state === 'inflight' && packet.ackEliciting) this.bytesInFlight -= packet.sizeBytes;
        packet.state = 'acked';
        newlyAckedBytes += packet.sizeBytes;
        if (packet.ackEliciting) ackElicitingAcked = true;
        this.onPacketAcked(packet);
        if (pn > largestNewlyAckedPn) {
          largestNewlyAckedPn = pn;
          largestNewlyAcked = packet;
        }
        this.sent[pn - this.sentBase] = undefined;
      }
    }
    if (!largestNewlyAcked) return;
    if (largestNewlyAckedPn > this.largestAcked) {
      // Packets the ACK has now passed without acknowledging may be lost: watch them.
      for (let pn = Math.max(this.largestAcked + 1, this.sentBase); pn < largestNewlyAckedPn; pn += 1) {
        const packet = this.sent[pn - this.sentBase];
        if (packet && packet.state === 'inflight') this.suspects.push(pn);
      }
      this.largestAcked = largestNewlyAckedPn;
      if (ackElicitingAcked) {
        const sample = now - largestNewlyAcked.timeSentMs;
        // The rate reacts to queueing: give it the path's RTT, not the peer's ACK delay (up to
        // maxAckDelayMs, more than the `low` policy's whole 4 ms queue target).
        this.rate.onAck(now, this.updateRtt(sample, ackDelayUs / 1000), newlyAckedBytes);
      }
    } else {
      this.rate.onAck(now, this.srttMs || initialRttMs, newlyAckedBytes);
    }
    this.ptoCount = 0;
    this.detectLoss(now);
    this.compactSent(now);
    this.freeAckedChunks();
  }

  /** Returns the sample less the peer's ACK delay (when that leaves it at or above the minimum). */
  private updateRtt(sampleMs: number, ackDelayMs: number): number {
    this.minRttMs = Math.min(this.minRttMs, sampleMs);
    const adjusted = sampleMs - ackDelayMs >= this.minRttMs ? sampleMs - Math.min(ackDelayMs, this.config.maxAckDelayMs) : sampleMs;
    if (this.srttMs === 0) {
      this.srttMs = adjusted;
      this.rttVarMs = adjusted / 2;
    } else {
      this.rttVarMs = 0.75 * this.rttVarMs + 0.25 * Math.abs(this.srttMs - adjusted);
      this.srttMs = 0.875 * this.srttMs + 0.125 * adjusted;
    }
    return adjusted;
  }

  private onPacketAcked(packet: SentPacket): void {
    this.stats_.packetsAcked += 1;
    const d = packet.data;
    if (d) for (let i = 0; i < d.length; i += 2) this.stats_.dataBytesAcked += this.acked.add(d[i]!, d[i + 1]!);
    const c = packet.control;
    if (c) for (let i = 0; i < c.length; i += 2) this.controlAcked.add(c[i]!, c[i + 1]!);
  }

  /** A packet declared lost was acknowledged: it was late, not lost. */
  private onSpuriousLoss(pn: number): void {
    this.stats_.spuriousLosses += 1;
    this.reorderPackets = Math.min(maxReorderPackets, Math.max(this.reorderPackets, this.largestAcked - pn + 1));
    const srtt = this.srttMs || initialRttMs;
    this.reorderWindowMs = Math.min(srtt, this.reorderWindowMs + (Number.isFinite(this.minRttMs) ? this.minRttMs : srtt) / 4);
  }

  private onPacketLost(packet: SentPacket): void {
    this.stats_.packetsLost += 1;
    this.rate.onLoss(packet.timeSentMs);
    if (packet.state === 'inflight' && packet.ackEliciting) this.bytesInFlight -= packet.sizeBytes;
    packet.state = 'lost';
    this.sendAgain(packet);
  }

  /** Queues what a packet carried (data, control, MAX_DATA) to go out again, lost or not. */
  private sendAgain(packet: SentPacket): void {
    const d = packet.data;
    if (d) for (let i = 0; i < d.length; i += 2) this.retransmit.add(d[i]!, d[i + 1]!);
    const c = packet.control;
    if (c) for (let i = 0; i < c.length; i += 2) this.controlRetransmit.add(c[i]!, c[i + 1]!);
    if (packet.maxData) this.maxDataDue = true;
  }

  private lossDelayMs(): number {
    return Math.max(timeThreshold * Math.max(this.srttMs || initialRttMs, this.latestRtt()) + this.reorderWindowMs, 1);
  }

  private latestRtt(): number {
    return this.srttMs || initialRttMs;
  }

  private detectLoss(now: number): void {
    const lossDelay = this.lossDelayMs();
    this.lossTimeMs = undefined;
    const keep: number[] = [];
    for (const pn of this.suspects) {
      const packet = pn >= this.sentBase ? this.sent[pn - this.sentBase] : undefined;
      if (!packet || packet.state !== 'inflight') continue;
      // Compare the same sum pollTimeout() arms the timer with (not now − delay): with fractional
      // times the two can round apart, and the timer would fire at `now` forever with nothing lost.
      const lostAtMs = packet.timeSentMs + lossDelay;
      if (this.largestAcked - pn >= this.reorderPackets || lostAtMs <= now) {
        // The record stays a while: an ACK of it later reveals reordering (see `maxReorderPackets`).
        this.onPacketLost(packet);
      } else {
        keep.push(pn);
        this.lossTimeMs = this.lossTimeMs === undefined ? lostAtMs : Math.min(this.lossTimeMs, lostAtMs);
      }
    }
    this.suspects = keep;
  }

  private compactSent(now: number): void {
    let drop = this.sentFloor - this.sentBase;
    const lostBeforeMs = now - keepLostRtts * (this.srttMs || initialRttMs);
    for (; drop < this.sent.length; drop += 1) {
      const packet = this.sent[drop];
      if (packet !== undefined && (packet.state !== 'lost' || packet.timeSentMs >= lostBeforeMs)) break;
    }
    this.sentFloor = this.sentBase + drop;
    if (drop > 1024 || drop === this.sent.length) {
      this.sent.splice(0, drop);
      this.sentBase += drop;
    }
  }

  /** Frees send-buffer chunks whose bytes are all acknowledged. */
  private freeAckedChunks(): void {
    let freed = 0;
    while (this.sendChunks.length > 0) {
      const chunk = this.sendChunks[0]!;
      if (!this.acked.covers(chunk.offset, chunk.offset + chunk.bytes.length)) break;
      this.sendChunks.shift();
      freed += chunk.bytes.length;
    }
    if (freed > 0) {
      this.bufferedBytes -= freed;
      // Acked ranges below the oldest live chunk are no longer needed.
      const floor = this.sendChunks[0]?.offset ?? this.writtenEnd;
      this.acked.remove(0, floor);
      this.acked.add(0, floor);
      if (this.wasBlockedOnBuffer) {
        this.wasBlockedOnBuffer = false;
        this.events.push({ type: 'writable' });
      }
    }
  }

  // ── Timers ──────────────────────────────────────────────────────────────────────────────────────

  private ptoMs(): number {
    const srtt = this.srttMs || initialRttMs;
    return srtt + Math.max(4 * this.rttVarMs, 1) + this.config.maxAckDelayMs;
  }

  private ptoDeadline(): number | undefined {
    if (this.bytesInFlight <= 0 || this.state !== 'connected') return undefined;
    return this.lastAckElicitingSentMs + Math.min(this.ptoMs() * 2 ** this.ptoCount, maxPtoMs);
  }

  handleTimeout(now: number): void {
    this.nowMs = Math.max(this.nowMs, now);
    if (this.state === 'closed') return;
    if (this.state === 'closing') {
      if (now >= this.closeDeadlineMs) this.finishClose(false);
      else if (now >= this.closeRetryMs) {
        this.closeFrameDue = true;
        this.closeRetries += 1;
        this.closeRetryMs = now + Math.min(this.ptoMs() * 2 ** this.closeRetries, maxPtoMs);
      }
      return;
    }
    if (this.state === 'handshake') {
      if (now >= this.handshakeDeadlineMs) {
        this.closeCode = CloseCode.handshakeTimeout;
        this.closeReason = `no answer to the handshake within ${this.config.handshakeTimeoutMs} ms`;
        this.finishClose(false);
      }
      return;
    }
    if (now >= this.lastReceiveMs + this.config.idleTimeoutMs) {
      this.closeCode = CloseCode.idleTimeout;
      this.closeReason = `nothing heard from the peer for ${this.config.idleTimeoutMs} ms`;
      this.finishClose(false);
      return;
    }
    if (this.lossTimeMs !== undefined && now >= this.lossTimeMs) this.detectLoss(now);
    this.checkCloseAfterControl(now);
    if (this.state !== 'connected') return;
    const pto = this.ptoDeadline();
    if (pto !== undefined && now >= pto) {
      this.ptoCount += 1;
      if (this.ptoCount >= 3) this.rate.onPersistentCongestion();
      this.probesDue = 2;
      // Probe with the oldest unacknowledged data: it is what the receiver most likely misses.
      for (let i = 0; i < this.sent.length; i += 1) {
        const packet = this.sent[i];
        if (packet && packet.state === 'inflight' && packet.ackEliciting) {
          this.sendAgain(packet);
          break;
        }
      }
      this.lastAckElicitingSentMs = now;
    }
    // Keep a quiet session (paused, or waiting on the application) alive.
    if (now >= this.lastSendMs + this.config.idleTimeoutMs / 3) this.pingDue = true;
  }

  pollTimeout(): number | undefined {
    if (this.state === 'closed') return undefined;
    if (this.state === 'closing') return Math.min(this.closeDeadlineMs, this.closeRetryMs);
    const candidates: number[] = [];
    if (this.state === 'handshake') {
      candidates.push(this.handshakeDeadlineMs);
      if (this.clientHello) candidates.push(this.helloDueMs);
      return Math.min(...candidates);
    }
    candidates.push(this.lastReceiveMs + this.config.idleTimeoutMs);
    // A keepalive the amplification limit forbids would leave this deadline in the past: a busy loop.
    if (this.amplificationAllows(this.config.maxDatagramBytes)) candidates.push(this.lastSendMs + this.config.idleTimeoutMs / 3);
    if (this.ackDueMs !== undefined) candidates.push(this.ackDueMs);
    if (this.lossTimeMs !== undefined) candidates.push(this.lossTimeMs);
    if (this.closeAfterControl) candidates.push(this.closeAfterControl.deadlineMs);
    const pto = this.ptoDeadline();
    if (pto !== undefined) candidates.push(pto);
    // As for keepalives: a challenge the candidate's budget forbids waits for a packet, not a timer.
    const probe = this.pathProbe;
    if (probe && probe.dueMs !== Infinity && this.pathBudgetAllows(probe)) candidates.push(probe.dueMs);
    if (this.addressValidated && (this.hasDataToSend() || this.hasControlToSend()) && !this.inflightCapped()) {
      this.pacer.refill(this.nowMs, this.rate.rateBps);
      candidates.push(this.pacer.nextSendMs(this.nowMs, this.rate.rateBps, this.config.maxDatagramBytes));
    }
    return Math.min(...candidates);
  }

  pollEvent(): ConnectionEvent | undefined {
    return this.events.shift();
  }

  /**
   * Ends the connection here without telling the peer (it cannot be reached): the application decided
   * the path is gone sooner than the idle timeout would (e.g. to continue over another transport).
   */
  abandon(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.closeCode = code;
    this.closeReason = reason;
    this.finishClose(false);
  }

  private finishClose(byPeer: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.events.push({ type: 'closed', code: this.closeCode, reason: this.closeReason, byPeer });
  }

  // ── Output ──────────────────────────────────────────────────────────────────────────────────────

  private controlDelivered(): boolean {
    return this.controlAcked.covers(0, this.controlOut.length);
  }

  /** A pending `done` close goes ahead once the control stream is acknowledged, or at its deadline. */
  private checkCloseAfterControl(now: number): void {
    const pending = this.closeAfterControl;
    if (pending && this.state === 'connected' && (this.controlDelivered() || now >= pending.deadlineMs)) {
      this.closeAfterControl = undefined;
      this.enterClosing(pending.code, pending.reason);
    }
  }

  private hasControlToSend(): boolean {
    return !this.controlUnsent.isEmpty || !this.controlRetransmit.isEmpty;
  }

  private hasDataToSend(): boolean {
    if (this.sendingPaused) return false;
    if (this.nextResendQueue()) return true;
    const next = this.unsent.min;
    return next !== undefined && next < this.peerMaxData;
  }

  /**
   * In flight at most the rate controller's cap (~2 RTTs of the rate; less in startup) with a floor, so a
   * dead path does not swallow the buffer.
   */
  private inflightCapped(): boolean {
    const rtt = Math.max(this.srttMs || initialRttMs, 10);
    const cap = Math.max(this.rate.inflightCapBytes(rtt), 64 * this.config.maxDatagramBytes);
    return this.bytesInFlight >= cap;
  }

  /** For a hello going out now: whether it is a copy of the one just sent; if not, copies of it follow. */
  private isHelloCopy(): boolean {
    if (this.helloCopiesLeft > 0) {
      this.helloCopiesLeft -= 1;
      return true;
    }
    this.helloCopiesLeft = helloCopies - 1;
    return false;
  }

  pollTransmit(now: number): Transmit | undefined {
    this.nowMs = Math.max(this.nowMs, now);
    this.checkCloseAfterControl(now);
    switch (this.state) {
      case 'closed':
        return this.closeAckDue ? this.buildCloseAck(now) : undefined;
      case 'handshake':
        if (this.clientHello && (now >= this.helloDueMs || this.helloCopiesLeft > 0)) {
          if (!this.isHelloCopy()) {
            this.helloAttempts += 1;
            if (this.helloAttempts === 1) this.firstHelloSentMs = now;
            // Back off to once a second, not four: ten tries fit the 10 s handshake timeout, not five,
            // so a lossy path or a few seconds' outage does not fail the connect (2.4 kB/s is nothing).
            this.helloDueMs = now + helloRetryMs * 2 ** Math.min(this.helloAttempts - 1, 1);
          }
          this.stats_.bytesSent += this.clientHello.length;
          return { remote: this.remote, bytes: this.clientHello };
        }
        return undefined;
      default:
        break;
    }
    if (this.serverHello && !this.addressValidated && (now >= this.helloDueMs || this.helloCopiesLeft > 0)) {
      if (!this.amplificationAllows(this.serverHello.length)) return undefined;
      if (!this.isHelloCopy()) this.helloDueMs = Infinity;
      this.bytesSentUnvalidated += this.serverHello.length;
      this.stats_.bytesSent += this.serverHello.length;
      return { remote: this.remote, bytes: this.serverHello };
    }
    // Connected or closing: a CLOSE, too, must find a peer that moved (closing has no probe timer; the
    // peer's packets from the new address bring each try).
    const response = this.pathResponses.shift();
    if (response) return this.buildPathPacket(now, response.remote, FrameType.pathResponse, response.data);
    const probe = this.pathProbe;
    if (probe && now >= probe.dueMs && this.pathBudgetAllows(probe)) {
      probe.attempts += 1;
      probe.lastSentMs = now;
      probe.sentBytes += pathPacketBytes;
      probe.dueMs = probe.attempts < maxPathChallenges ? now + this.ptoMs() * 2 ** (probe.attempts - 1) : Infinity;
      return this.buildPathPacket(now, probe.remote, FrameType.pathChallenge, probe.challenge);
    }
    return this.buildPacket(now);
  }

  private amplificationAllows(bytes: number): boolean {
    return this.addressValidated || this.bytesSentUnvalidated + bytes <= amplificationFactor * this.bytesReceivedUnvalidated;
  }

  private pathBudgetAllows(probe: PathProbe): boolean {
    return probe.sentBytes + pathPacketBytes <= amplificationFactor * probe.receivedBytes;
  }

  /**
   * A packet holding one PATH_CHALLENGE or PATH_RESPONSE, to `remote` (which may not be the session's
   * address). Not tracked for loss: a lost challenge is repeated, a lost response is asked for again.
   */
  private buildPathPacket(now: number, remote: string, type: typeof FrameType.pathChallenge | typeof FrameType.pathResponse, data: Buffer): Transmit | undefined {
    this.writer.reset();
    this.writer.path(type, data);
    const sealed = this.seal(now, { timeSentMs: now, sizeBytes: 0, ackEliciting: false, data: undefined, control: undefined, maxData: false, state: 'inflight' });
    return sealed && { remote, bytes: sealed.bytes };
  }

  private buildPacket(now: number): Transmit | undefined {
    // Before the client proves it holds the keys, a whole packet must fit in the amplification budget.
    if (!this.amplificationAllows(this.config.maxDatagramBytes)) return undefined;
    const w = this.writer;
    w.reset();
    this.packetAckEliciting = false;
    const record: SentPacket = { timeSentMs: now, sizeBytes: 0, ackEliciting: false, data: undefined, control: undefined, maxData: false, state: 'inflight' };

    if (this.state === 'closing') {
      if (!this.closeFrameDue) return undefined;
      this.closeFrameDue = false;
      w.close(this.closeCode, this.closeReason);
      this.closePns.push(this.nextPacketNumber);
      return this.seal(now, record);
    }

    const ackDue = this.ackDueMs !== undefined && now >= this.ackDueMs;
    if (ackDue) this.writeAck(now);
    if (this.maxDataDue && w.room >= 7) {
      w.maxData(this.localMaxData);
      this.advertisedMaxData = this.localMaxData;
      record.maxData = true;
      this.maxDataDue = false;
      this.packetAckEliciting = true;
    }
    const probing = this.probesDue > 0;
    this.pacer.refill(now, this.rate.rateBps);
    // Control is paced and capped like data: a 256 KiB manifest must not leave as one line-rate burst.
    const paced = probing || (this.pacer.canSend(this.config.maxDatagramBytes) && !this.inflightCapped());
    if (paced) this.writeControl(record);
    if (paced && this.hasDataToSend()) this.writeData(record);
    if ((this.pingDue || probing) && !this.packetAckEliciting) {
      w.ping();
      this.packetAckEliciting = true;
    }
    this.pingDue = false;
    if (probing && this.packetAckEliciting) this.probesDue -= 1;
    if (w.at === 0) return undefined;
    if (!ackDue && this.ackDueMs !== undefined && this.ackElicitingSinceAck > 0 && w.room >= FrameWriter.ackBytes(4)) {
      // An ACK rides along for free when a packet goes anyway.
      this.writeAck(now);
    }
    record.ackEliciting = this.packetAckEliciting;
    return this.seal(now, record);
  }

  /** Closed by the peer: one ACK-only packet for its CLOSE. */
  private buildCloseAck(now: number): Transmit | undefined {
    this.closeAckDue = false;
    this.writer.reset();
    this.writeAck(now);
    if (this.writer.at === 0) return undefined;
    return this.seal(now, { timeSentMs: now, sizeBytes: 0, ackEliciting: false, data: undefined, control: undefined, maxData: false, state: 'inflight' });
  }

  private writeAck(now: number): void {
    const ranges: [number, number][] = [];
    for (const range of this.receivedPns.reversed()) {
      ranges.push(range);
      if (ranges.length === maxAckRanges) break;
    }
    const maxFit = Math.floor((this.writer.room - 6) / 10);
    if (ranges.length === 0 || maxFit < 1) return;
    const delayUs = Math.max(0, Math.round((now - this.largestReceivedAtMs) * 1000));
    this.writer.ack(delayUs, ranges.slice(0, maxFit));
    this.ackElicitingSinceAck = 0;
    this.ackDueMs = undefined;
  }

  private writeControl(record: SentPacket): void {
    const w = this.writer;
    for (const queue of [this.controlRetransmit, this.controlUnsent]) {
      while (!queue.isEmpty && w.room > FrameWriter.streamFrameOverhead + 16) {
        const range = queue.shift(w.room - FrameWriter.streamFrameOverhead)!;
        const [start, end] = range;
        if (this.controlAcked.covers(start, end)) continue;
        w.control(start, this.controlOut.subarray(start, end));
        (record.control ??= []).push(start, end);
        this.packetAckEliciting = true;
      }
    }
  }

  /** The first of `resendQueues` that holds anything. */
  private nextResendQueue(): RangeSet | undefined {
    for (const queue of this.resendQueues) if (!queue.isEmpty) return queue;
    return undefined;
  }

  private writeData(record: SentPacket): void {
    const w = this.writer;
    let wrote = 0;
    // Copies made here go out in a later packet: one lost packet must not take both.
    const copies: number[] = [];
    const inTail = this.writesEnded && this.unsent.isEmpty;
    while (w.room > FrameWriter.streamFrameOverhead + 64) {
      const queue = this.nextResendQueue() ?? this.unsent;
      const fromRetransmit = queue !== this.unsent;
      const next = queue.min;
      if (next === undefined) break;
      if (!fromRetransmit && next >= this.peerMaxData) break;
      const limit = fromRetransmit ? Infinity : this.peerMaxData;
      const maxLength = Math.min(w.room - FrameWriter.streamFrameOverhead, limit - next);
      let [start, end] = queue.shift(maxLength)!;
      if (fromRetransmit) {
        // Part of a lost range may have been acknowledged since (another copy got through) and its
        // chunk freed: re-send only the unacknowledged parts, the first now and the rest later.
        const gaps = this.acked.gaps(start, end);
        if (gaps.length === 0) continue;
        for (let i = 1; i < gaps.length; i += 1) queue.add(gaps[i]![0], gaps[i]![1]);
        [start, end] = gaps[0]!;
      }
      const bytes = this.readSendBuffer(start, end);
      // Unacknowledged bytes are always still buffered: losing them here would stall the stream for ever.
      if (!bytes) throw new Error(`send buffer lost [${start}, ${end})`);
      w.data(start, bytes);
      (record.data ??= []).push(start, end);
      this.packetAckEliciting = true;
      wrote += end - start;
      if (fromRetransmit) this.stats_.dataBytesRetransmitted += end - start;
      if (inTail && queue === this.retransmit) {
        const again = this.tailResent.covers(start, end);
        if (!again) this.tailResent.add(start, end);
        const share = again ? tailCopyShare : tailFirstCopyShare;
        if (this.tailCopiedBytes + 2 * (end - start) <= this.writtenEnd * share) {
          copies.push(start, end);
          this.tailCopiedBytes += 2 * (end - start);
        }
      }
    }
    for (let i = 0; i < copies.length; i += 2) {
      this.tailCopies.add(copies[i]!, copies[i + 1]!);
      this.tailSecondCopies.add(copies[i]!, copies[i + 1]!);
    }
    this.stats_.dataBytesSent += wrote;
  }

  /** The bytes of [start, end) from the send buffer; the range never spans two writes' chunks here. */
  private readSendBuffer(start: number, end: number): Uint8Array | undefined {
    let lo = 0;
    let hi = this.sendChunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const chunk = this.sendChunks[mid]!;
      if (chunk.offset + chunk.bytes.length <= start) lo = mid + 1;
      else if (chunk.offset > start) hi = mid - 1;
      else {
        const chunkEnd = chunk.offset + chunk.bytes.length;
        if (end <= chunkEnd) return chunk.bytes.subarray(start - chunk.offset, end - chunk.offset);
        // Spans chunks: copy (rare: only where a packet crosses a write boundary).
        const out = Buffer.allocUnsafe(end - start);
        let at = 0;
        for (let i = mid; i < this.sendChunks.length && at < out.length; i += 1) {
          const c = this.sendChunks[i]!;
          const from = Math.max(start, c.offset) - c.offset;
          const to = Math.min(end, c.offset + c.bytes.length) - c.offset;
          out.set(c.bytes.subarray(from, to), at);
          at += to - from;
        }
        return out;
      }
    }
    return undefined;
  }

  private seal(now: number, record: SentPacket): Transmit | undefined {
    const w = this.writer;
    const size = shortHeaderBytes + w.at + tagBytes;
    if (this.packetsWithSendKey >= this.config.packetsPerKey) {
      this.sendKey = this.sendKey!.next();
      this.sendKeyPhase ^= 1;
      this.packetsWithSendKey = 0;
    }
    const out = Buffer.allocUnsafe(size);
    out[0] = PacketType.short | (this.sendKeyPhase ? keyPhaseBit : 0);
    this.peerConnectionId.copy(out, 1);
    const pn = this.nextPacketNumber++;
    out.writeUInt16BE(0, 9);
    out.writeUIntBE(pn, 11, 6);
    this.sendKey!.seal(pn, out.subarray(0, shortHeaderBytes), w.buf.subarray(0, w.at), out, shortHeaderBytes);
    this.packetsWithSendKey += 1;
    record.sizeBytes = size;
    if (record.ackEliciting) {
      this.sent.push(record);
      this.bytesInFlight += size;
      this.lastAckElicitingSentMs = now;
      if (record.data || record.control) this.pacer.spend(size);
    } else {
      this.sent.push(undefined);
    }
    this.lastSendMs = now;
    this.stats_.packetsSent += 1;
    this.stats_.bytesSent += size;
    if (!this.addressValidated) this.bytesSentUnvalidated += size;
    return { remote: this.remote, bytes: out };
  }
}
