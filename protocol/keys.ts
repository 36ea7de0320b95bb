import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';

export const keyBytes = 32;
export const ivBytes = 12;
export const tagBytes = 16;
export const nonceBytes = 16;
export const secretBytes = 32;
/** Packets per key before a key update: far below AES-GCM's confidentiality limit (2^23 in QUIC's analysis). */
export const packetsPerKey = 2 ** 22;

function expand(secret: Uint8Array, label: string, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `slipstream/1 ${label}`, length));
}

/** One direction's packet protection for one key phase. */
export class PacketKey {
  readonly key: Buffer;
  readonly iv: Buffer;
  private readonly nonce = Buffer.alloc(ivBytes);

  constructor(readonly secret: Buffer) {
    this.key = expand(secret, 'key', keyBytes);
    this.iv = expand(secret, 'iv', ivBytes);
  }

  /** The next key phase's key (key update). */
  next(): PacketKey {
    return new PacketKey(expand(this.secret, 'ku', secretBytes));
  }

  private nonceFor(packetNumber: number): Buffer {
    this.iv.copy(this.nonce);
    // Packet numbers stay below 2^48: XOR them into the IV's last six bytes.
    const high = Math.floor(packetNumber / 2 ** 32);
    const low = packetNumber >>> 0;
    this.nonce.writeUInt16BE(this.nonce.readUInt16BE(6) ^ high, 6);
    this.nonce.writeUInt32BE((this.nonce.readUInt32BE(8) ^ low) >>> 0, 8);
    return this.nonce;
  }

  /** Encrypts `plaintext` into `out` at `outOffset` (ciphertext then tag); returns bytes written. */
  seal(packetNumber: number, header: Uint8Array, plaintext: Uint8Array, out: Buffer, outOffset: number): number {
    const cipher = createCipheriv('aes-256-gcm', this.key, this.nonceFor(packetNumber));
    cipher.setAAD(header);
    let written = cipher.update(plaintext).copy(out, outOffset);
    written += cipher.final().copy(out, outOffset + written);
    written += cipher.getAuthTag().copy(out, outOffset + written);
    return written;
  }

  /** The plaintext, or undefined when the packet is forged, corrupted or truncated. */
  open(packetNumber: number, header: Uint8Array, sealed: Uint8Array): Buffer | undefined {
    if (sealed.length < tagBytes) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', this.key, this.nonceFor(packetNumber));
    decipher.setAAD(header);
    decipher.setAuthTag(sealed.subarray(sealed.length - tagBytes));
    try {
      const body = decipher.update(sealed.subarray(0, sealed.length - tagBytes));
      const rest = decipher.final();
      return rest.length === 0 ? body : Buffer.concat([body, rest]);
    } catch {
      return undefined;
    }
  }
}

export interface SessionKeys {
  clientToServer: PacketKey;
  serverToClient: PacketKey;
  /** Keys PATH_CHALLENGE data (`pathChallengeData`). */
  path: Buffer;
}

/** HKDF over the session secret from the token, salted with both sides' fresh nonces. */
export function deriveSessionKeys(secret: Uint8Array, clientNonce: Uint8Array, serverNonce: Uint8Array): SessionKeys {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const directional = (label: string) => new PacketKey(Buffer.from(hkdfSync('sha256', secret, salt, `slipstream/1 ${label}`, secretBytes)));
  const path = Buffer.from(hkdfSync('sha256', secret, salt, 'slipstream/1 path', secretBytes));
  return { clientToServer: directional('c2s'), serverToClient: directional('s2c'), path };
}

/**
 * The `counter`th PATH_CHALLENGE's 8 bytes: HMAC-SHA256(path key, counter), truncated. The core has no
 * randomness of its own; without the session secret these bytes cannot be predicted (and a PATH_RESPONSE
 * is AEAD-sealed, so it cannot be forged either).
 */
export function pathChallengeData(key: Buffer, counter: number): Buffer {
  const message = Buffer.alloc(8);
  message.writeUIntBE(counter, 2, 6);
  return createHmac('sha256', key).update(message).digest().subarray(0, 8);
}
