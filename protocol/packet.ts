import { nonceBytes } from './keys';

export const protocolVersion = 1;
export const connectionIdBytes = 8;
export const minClientHelloBytes = 1200;
export const maxTokenBytes = 4096;
export const shortHeaderBytes = 1 + connectionIdBytes + 8;
/** ServerHello: type, version, destination id, server id, server nonce, packet number. */
export const serverHelloHeaderBytes = 2 + connectionIdBytes * 2 + nonceBytes + 8;

export const PacketType = { clientHello: 0x01, serverHello: 0x02, short: 0x40 } as const;
export const keyPhaseBit = 0x04;

export const FrameType = {
  ping: 0x01,
  ack: 0x02,
  data: 0x03,
  control: 0x04,
  maxData: 0x05,
  close: 0x06,
  params: 0x07,
  pathChallenge: 0x08,
  pathResponse: 0x09,
} as const;

export const maxAckRanges = 32;
/** PATH_CHALLENGE / PATH_RESPONSE data (RFC 9000 §19.17). */
export const pathDataBytes = 8;

export interface ClientHello {
  version: number;
  clientConnectionId: Buffer;
  clientNonce: Buffer;
  token: string;
}

/** A ClientHello, or undefined for anything else (wrong type, short, unpadded, bad token length). */
export function parseClientHello(bytes: Uint8Array): ClientHello | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < minClientHelloBytes || b[0] !== PacketType.clientHello) return undefined;
  const version = b[1]!;
  let at = 2;
  const clientConnectionId = Buffer.from(b.subarray(at, (at += connectionIdBytes)));
  const clientNonce = Buffer.from(b.subarray(at, (at += nonceBytes)));
  const tokenLength = b.readUInt16BE(at);
  at += 2;
  if (tokenLength === 0 || tokenLength > maxTokenBytes || at + tokenLength > b.length) return undefined;
  const token = b.subarray(at, at + tokenLength).toString('latin1');
  return { version, clientConnectionId, clientNonce, token };
}

export function encodeClientHello(hello: ClientHello): Buffer {
  const token = Buffer.from(hello.token, 'latin1');
  if (token.length > maxTokenBytes) throw new Error('token too long');
  const out = Buffer.alloc(Math.max(minClientHelloBytes, 2 + connectionIdBytes + nonceBytes + 2 + token.length));
  let at = 0;
  out[at++] = PacketType.clientHello;
  out[at++] = hello.version;
  at += hello.clientConnectionId.copy(out, at);
  at += hello.clientNonce.copy(out, at);
  at = out.writeUInt16BE(token.length, at);
  token.copy(out, at);
  return out;
}

/** The connection id a server should route a datagram by, or undefined (hellos carry their own ids). */
export function destinationConnectionId(bytes: Uint8Array): string | undefined {
  if (bytes.length < shortHeaderBytes) return undefined;
  const type = bytes[0]!;
  if ((type & 0xf0) !== PacketType.short) return undefined;
  return Buffer.from(bytes.buffer, bytes.byteOffset + 1, connectionIdBytes).toString('hex');
}

/** Offsets and packet numbers are 48-bit on the wire: 256 TiB of stream, 2^48 packets. */
export const maxWireNumber = 2 ** 48 - 1;

/** Writes frames into a packet's plaintext; the caller checks `room` before each frame. */
export class FrameWriter {
  at = 0;
  constructor(readonly buf: Buffer) {}

  get room(): number {
    return this.buf.length - this.at;
  }

  reset(): void {
    this.at = 0;
  }

  ping(): void {
    this.buf[this.at++] = FrameType.ping;
  }

  /** `ranges`: newest first, at most maxAckRanges; 1 + 4 + 1 + 10 per range bytes. */
  ack(ackDelayUs: number, ranges: readonly (readonly [number, number])[]): void {
    const b = this.buf;
    b[this.at++] = FrameType.ack;
    this.at = b.writeUInt32BE(Math.min(ackDelayUs, 0xffffffff) >>> 0, this.at);
    b[this.at++] = ranges.length;
    for (const [start, end] of ranges) {
      this.at = b.writeUIntBE(start, this.at, 6);
      this.at = b.writeUInt32BE(end - start, this.at);
    }
  }

  static ackBytes(rangeCount: number): number {
    return 6 + rangeCount * 10;
  }

  /** 1 + 6 + 2 header bytes, then the bytes. */
  data(offset: number, bytes: Uint8Array): void {
    const b = this.buf;
    b[this.at++] = FrameType.data;
    this.at = b.writeUIntBE(offset, this.at, 6);
    this.at = b.writeUInt16BE(bytes.length, this.at);
    b.set(bytes, this.at);
    this.at += bytes.length;
  }

  control(offset: number, bytes: Uint8Array): void {
    const b = this.buf;
    b[this.at++] = FrameType.control;
    this.at = b.writeUIntBE(offset, this.at, 6);
    this.at = b.writeUInt16BE(bytes.length, this.at);
    b.set(bytes, this.at);
    this.at += bytes.length;
  }

  static readonly streamFrameOverhead = 9;

  maxData(offset: number): void {
    this.buf[this.at++] = FrameType.maxData;
    this.at = this.buf.writeUIntBE(Math.min(offset, maxWireNumber), this.at, 6);
  }

  close(code: number, reason: string): void {
    const text = Buffer.from(reason.slice(0, 200), 'utf8');
    this.buf[this.at++] = FrameType.close;
    this.at = this.buf.writeUInt16BE(code, this.at);
    this.at = this.buf.writeUInt16BE(text.length, this.at);
    this.at += text.copy(this.buf, this.at);
  }

  params(maxDatagramBytes: number, idleTimeoutMs: number): void {
    this.buf[this.at++] = FrameType.params;
    this.at = this.buf.writeUInt16BE(maxDatagramBytes, this.at);
    this.at = this.buf.writeUInt32BE(idleTimeoutMs, this.at);
  }

  /** PATH_CHALLENGE or PATH_RESPONSE: the type, then `pathDataBytes` of data. */
  path(type: typeof FrameType.pathChallenge | typeof FrameType.pathResponse, data: Uint8Array): void {
    this.buf[this.at++] = type;
    this.buf.set(data.subarray(0, pathDataBytes), this.at);
    this.at += pathDataBytes;
  }
}

export interface FrameVisitor {
  ping(): void;
  /** `ranges` newest first, [start, end). */
  ack(ackDelayUs: number, ranges: [number, number][]): void;
  data(offset: number, bytes: Buffer): void;
  control(offset: number, bytes: Buffer): void;
  maxData(offset: number): void;
  closeFrame(code: number, reason: string): void;
  params(maxDatagramBytes: number, idleTimeoutMs: number): void;
  pathChallenge(data: Buffer): void;
  pathResponse(data: Buffer): void;
}

/**
 * Walks a decrypted payload. Returns false on any malformed frame (the packet was authentic, so this
 * is a broken or hostile peer): nothing after the bad frame is visited.
 */
export function parseFrames(b: Buffer, visit: FrameVisitor): boolean {
  let at = 0;
  // Bounds checks are inline (`at + n > end`), not a closure: this runs for every packet.
  const end = b.length;
  while (at < end) {
    const type = b[at++]!;
    switch (type) {
      case FrameType.ping:
        visit.ping();
        break;
      case FrameType.ack: {
        if (at + 5 > end) return false;
        const delay = b.readUInt32BE(at);
        const count = b[at + 4]!;
        at += 5;
        if (count === 0 || count > maxAckRanges || at + count * 10 > end) return false;
        const ranges: [number, number][] = [];
        for (let i = 0; i < count; i += 1) {
          const start = b.readUIntBE(at, 6);
          const length = b.readUInt32BE(at + 6);
          at += 10;
          if (length === 0) return false;
          ranges.push([start, start + length]);
        }
        visit.ack(delay, ranges);
        break;
      }
      case FrameType.data:
      case FrameType.control: {
        if (at + 8 > end) return false;
        const offset = b.readUIntBE(at, 6);
        const length = b.readUInt16BE(at + 6);
        at += 8;
        if (at + length > end) return false;
        const bytes = b.subarray(at, at + length);
        at += length;
        if (type === FrameType.data) visit.data(offset, bytes);
        else visit.control(offset, bytes);
        break;
      }
      case FrameType.maxData:
        if (at + 6 > end) return false;
        visit.maxData(b.readUIntBE(at, 6));
        at += 6;
        break;
      case FrameType.close: {
        if (at + 4 > end) return false;
        const code = b.readUInt16BE(at);
        const length = b.readUInt16BE(at + 2);
        at += 4;
        if (at + length > end) return false;
        visit.closeFrame(code, b.subarray(at, at + length).toString('utf8'));
        at += length;
        break;
      }
      case FrameType.params:
        if (at + 6 > end) return false;
        visit.params(b.readUInt16BE(at), b.readUInt32BE(at + 2));
        at += 6;
        break;
      case FrameType.pathChallenge:
      case FrameType.pathResponse: {
        if (at + pathDataBytes > end) return false;
        const data = b.subarray(at, at + pathDataBytes);
        at += pathDataBytes;
        if (type === FrameType.pathChallenge) visit.pathChallenge(data);
        else visit.pathResponse(data);
        break;
      }
      default:
        return false;
    }
  }
  return true;
}
