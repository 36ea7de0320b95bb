import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Keyring, TokenError, openToken, sealToken, ticketSchema, type Ticket } from '../../core/token';

const key = () => randomBytes(32).toString('base64');
const ticket: Ticket = {
  transferId: 'tr_1', bucket: 'b', keyPrefix: 'x/', direction: 'send', maxRateKbps: 1000, minRateKbps: 0,
  ratePolicy: 'fair', expiresAt: 2_000, sessionSecret: 'c2VjcmV0',
};

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof TokenError ? error.reason : 'other';
  }
  return undefined;
}

describe('transfer tokens', () => {
  const ring = Keyring.fromJson(JSON.stringify({ currentKeyId: 'k1', keys: { k1: key() } }));
  const token = sealToken(ring, 'transfer', ticket, randomBytes(12));

  it('round-trips and names its key id', () => {
    expect(token.startsWith('sst1.transfer.k1.')).toBe(true);
    expect(openToken(ring, 'transfer', token, ticketSchema, 1_000)).toEqual(ticket);
  });

  it('refuses expired, forged, truncated, wrong-purpose and unknown-key tokens', () => {
    expect(reason(() => openToken(ring, 'transfer', token, ticketSchema, 2_000))).toBe('expired');
    const body = token.split('.')[3]!;
    const flipped = Buffer.from(body, 'base64url');
    flipped[20]! ^= 1;
    expect(reason(() => openToken(ring, 'transfer', `sst1.transfer.k1.${flipped.toString('base64url')}`, ticketSchema, 1_000))).toBe('forged');
    expect(reason(() => openToken(ring, 'transfer', token.slice(0, 30), ticketSchema, 1_000))).toBe('malformed');
    expect(reason(() => openToken(ring, 'companion', token, ticketSchema, 1_000))).toBe('malformed');
    expect(reason(() => openToken(ring, 'transfer', token.replace('.k1.', '.k9.'), ticketSchema, 1_000))).toBe('unknown-key');
    // Re-labelling the purpose is caught by the AEAD, not only by the prefix check.
    const relabelled = token.replace('sst1.transfer.', 'sst1.companion.');
    expect(reason(() => openToken(ring, 'companion', relabelled, ticketSchema, 1_000))).toBe('forged');
  });

  it('opens tokens sealed with an older key after rotation', () => {
    const k1 = key();
    const old = Keyring.fromJson(JSON.stringify({ currentKeyId: 'k1', keys: { k1 } }));
    const rotated = Keyring.fromJson(JSON.stringify({ currentKeyId: 'k2', keys: { k1, k2: key() } }));
    const sealed = sealToken(old, 'transfer', ticket, randomBytes(12));
    expect(openToken(rotated, 'transfer', sealed, ticketSchema, 1_000).transferId).toBe('tr_1');
    expect(sealToken(rotated, 'transfer', ticket, randomBytes(12))).toMatch(/^sst1\.transfer\.k2\./);
  });

  it('rejects keyrings with short keys or a missing current key', () => {
    expect(() => Keyring.fromJson(JSON.stringify({ currentKeyId: 'k1', keys: { k1: 'c2hvcnQ=' } }))).toThrow(/32 bytes/);
    expect(() => Keyring.fromJson(JSON.stringify({ currentKeyId: 'k2', keys: { k1: key() } }))).toThrow(/no key k2/);
    expect(() => Keyring.fromJson('not json')).toThrow(/JSON/);
  });
});
