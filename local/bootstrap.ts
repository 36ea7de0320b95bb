import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  BucketAlreadyOwnedByYou,
  CreateBucketCommand,
  HeadBucketCommand,
  PutBucketCorsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { z } from 'zod';
import type { KeyRepository } from '../core/state/keys';
import { Keyring } from '../core/token';

/** Creates the bucket if it is missing and lets the console's origins upload to it from a browser. */
export async function ensureBucket(s3: S3Client, bucket: string, corsOrigins: readonly string[]): Promise<void> {
  const exists = await s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
    () => true,
    () => false,
  );
  if (!exists) {
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (error) {
      if (!(error instanceof BucketAlreadyOwnedByYou)) throw error;
    }
  }
  await s3.send(
    new PutBucketCorsCommand({
      Bucket: bucket,
      CORSConfiguration: {
        CORSRules: [
          {
            AllowedOrigins: [...corsOrigins],
            AllowedMethods: ['GET', 'PUT', 'POST', 'HEAD'],
            AllowedHeaders: ['*'],
            ExposeHeaders: ['ETag'],
            MaxAgeSeconds: 3000,
          },
        ],
      },
    }),
  );
}

/** The token keyring, made on first start and kept so tokens survive a restart. */
export function loadOrCreateKeyring(path: string): string {
  if (existsSync(path)) {
    const json = readFileSync(path, 'utf8');
    Keyring.fromJson(json);
    return json;
  }
  const json = JSON.stringify({ currentKeyId: 'k1', keys: { k1: randomBytes(32).toString('base64') } }, null, 2);
  writeFileSync(path, json, { mode: 0o600 });
  return json;
}

export const credentialsFileSchema = z.object({
  apiUrl: z.string(),
  apiKey: z.string(),
  keyId: z.string(),
  bucket: z.string(),
  s3Endpoint: z.string(),
  region: z.string(),
});
export type CredentialsFile = z.infer<typeof credentialsFileSchema>;

export function readCredentials(path: string): CredentialsFile | undefined {
  if (!existsSync(path)) return undefined;
  const parsed = credentialsFileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  return parsed.success ? parsed.data : undefined;
}

/**
 * The admin key is made once and written to credentials.json; a later start reuses it while it still
 * works (the table is kept too), and makes a new one if the stored key no longer verifies.
 */
export async function ensureAdminKey(
  keys: KeyRepository,
  path: string,
  details: Omit<CredentialsFile, 'apiKey' | 'keyId'>,
): Promise<{ credentials: CredentialsFile; created: boolean }> {
  const now = new Date();
  const existing = readCredentials(path);
  if (existing && (await keys.verifyApiKey(existing.apiKey, now))) {
    const credentials = { ...existing, ...details };
    writeFileSync(path, JSON.stringify(credentials, null, 2), { mode: 0o600 });
    return { credentials, created: false };
  }
  const key = await keys.createApiKey({ name: 'local admin', buckets: ['*'], actions: ['read', 'write', 'admin'], now });
  const credentials: CredentialsFile = { ...details, apiKey: key.secret, keyId: key.id };
  writeFileSync(path, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  return { credentials, created: true };
}
