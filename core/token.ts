import { createCipheriv, createDecipheriv } from 'node:crypto';
import { z } from 'zod';
import { directionSchema, ratePolicySchema } from '../contracts';

export const tokenKeyBytes = 32;
const nonceBytes = 12;
const tagBytes = 16;
const tokenVersion = 'sst1';

export const keyringSchema = z.strictObject({
  currentKeyId: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/),
  keys: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,32}$/), z.string()),
});

/** Token keys by id: the current one seals, any listed one opens, so keys rotate without breaking tokens. */
export class Keyring {
  private constructor(
    readonly currentKeyId: string,
    private readonly keys: ReadonlyMap<string, Buffer>,
  ) {}

  static fromJson(json: string): Keyring {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      throw new Error('token keyring is not valid JSON');
    }
    const parsed = keyringSchema.parse(value);
    const keys = new Map<string, Buffer>();
    for (const [id, encoded] of Object.entries(parsed.keys)) {
      const key = Buffer.from(encoded, 'base64');
      if (key.length !== tokenKeyBytes) throw new Error(`token key ${id} must be ${tokenKeyBytes} bytes (base64)`);
      keys.set(id, key);
    }
    if (!keys.has(parsed.currentKeyId)) throw new Error(`token keyring has no key ${parsed.currentKeyId}`);
    return new Keyring(parsed.currentKeyId, keys);
  }

  key(id: string): Buffer | undefined {
    return this.keys.get(id);
  }
}

/** What a token proves: which transfer may move which bytes, in which direction, until when. */
export const ticketSchema = z.strictObject({
  transferId: z.string(),
  bucket: z.string(),
  keyPrefix: z.string(),
  direction: directionSchema,
  maxRateKbps: z.number().int(),
  minRateKbps: z.number().int(),
  ratePolicy: ratePolicySchema,
  /** Unix seconds. */
  expiresAt: z.number().int(),
  /** base64url; the client gets the same secret over HTTPS in the spec. */
  sessionSecret: z.string(),
});
export type Ticket = z.infer<typeof ticketSchema>;

/** A short-lived grant embedded in a URL for clients that cannot send headers (Uppy's Companion mode). */
export const companionGrantSchema = z.strictObject({
  bucket: z.string(),
  keyPrefix: z.string(),
  apiKeyId: z.string(),
  expiresAt: z.number().int(),
});
export type CompanionGrant = z.infer<typeof companionGrantSchema>;

export type TokenPurpose = 'transfer' | 'companion';

export class TokenError extends Error {
  override name = 'TokenError';
  constructor(
    readonly reason: 'malformed' | 'unknown-key' | 'forged' | 'expired',
    message: string,
  ) {
    super(message);
  }
}

function header(purpose: TokenPurpose, keyId: string): string {
  return `${tokenVersion}.${purpose}.${keyId}`;
}

/** AES-256-GCM over the JSON payload; the header (version, purpose, key id) is authenticated as AAD. */
export function sealToken(keyring: Keyring, purpose: TokenPurpose, payload: object, nonce: Buffer): string {
  if (nonce.length !== nonceBytes) throw new Error(`token nonce must be ${nonceBytes} bytes`);
  const keyId = keyring.currentKeyId;
  const key = keyring.key(keyId) as Buffer;
  const aad = header(purpose, keyId);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `${aad}.${Buffer.concat([nonce, body]).toString('base64url')}`;
}

export function openToken<T>(
  keyring: Keyring,
  purpose: TokenPurpose,
  token: string,
  schema: z.ZodType<T & { expiresAt: number }>,
  nowSeconds: number,
): T & { expiresAt: number } {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== tokenVersion || parts[1] !== purpose) {
    throw new TokenError('malformed', 'token is not a Slipstream token of this kind');
  }
  const keyId = parts[2] as string;
  const key = keyring.key(keyId);
  if (!key) throw new TokenError('unknown-key', `token was sealed with a key this service does not hold (${keyId})`);
  const sealed = Buffer.from(parts[3] as string, 'base64url');
  if (sealed.length < nonceBytes + tagBytes + 2) throw new TokenError('malformed', 'token is truncated');
  const nonce = sealed.subarray(0, nonceBytes);
  const tag = sealed.subarray(sealed.length - tagBytes);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.from(header(purpose, keyId)));
  decipher.setAuthTag(tag);
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(sealed.subarray(nonceBytes, sealed.length - tagBytes)), decipher.final()]);
  } catch {
    throw new TokenError('forged', 'token failed authentication');
  }
  const parsed = schema.safeParse(JSON.parse(plain.toString('utf8')));
  if (!parsed.success) throw new TokenError('malformed', 'token payload has the wrong shape');
  if (parsed.data.expiresAt <= nowSeconds) throw new TokenError('expired', 'token has expired');
  return parsed.data;
}
