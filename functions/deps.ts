import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { BucketGuard } from '../core/bucket-guard';
import { createDocumentClient, createPresignS3Client, createS3Client } from '../core/clients';
import type { Config } from '../core/config';
import { loadKeyring } from '../core/keyring-source';
import { KeyRepository } from '../core/state/keys';
import { PartRepository } from '../core/state/parts';
import { PreferencesRepository } from '../core/state/preferences';
import { TransferRepository } from '../core/state/transfers';
import type { Keyring } from '../core/token';

/** Everything a route needs from the outside world, built once per process (per Lambda container). */
export interface AppDeps {
  readonly config: Config;
  readonly s3: S3Client;
  /** Signs URLs that clients use directly; its endpoint may differ from the one the service uses. */
  readonly presignS3: S3Client;
  readonly keys: KeyRepository;
  readonly preferences: PreferencesRepository;
  readonly transfers: TransferRepository;
  /** Files and durable parts of transfers, shared with the engine (HTTP fallback continues its uploads). */
  readonly parts: PartRepository;
  readonly guard: BucketGuard;
  /** Loaded on first use, so route groups that never seal or open a token need no access to the key. */
  readonly keyring: () => Promise<Keyring>;
  readonly now: () => Date;
  readonly randomBytes: (size: number) => Buffer;
}

export function createDeps(config: Config): AppDeps {
  const db = createDocumentClient(config);
  const s3 = createS3Client(config);
  let keyring: Promise<Keyring> | undefined;
  return {
    config,
    s3,
    presignS3: createPresignS3Client(config),
    keys: new KeyRepository(db, config.tableName),
    preferences: new PreferencesRepository(db, config.tableName),
    transfers: new TransferRepository(db, config.tableName),
    parts: new PartRepository(db, config.tableName),
    guard: new BucketGuard(s3),
    keyring: () => {
      keyring ??= loadKeyring(config).catch((error: unknown) => {
        keyring = undefined;
        throw error;
      });
      return keyring;
    },
    now: () => new Date(),
    randomBytes,
  };
}
