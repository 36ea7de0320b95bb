import { BucketGuard } from '../core/bucket-guard';
import { createDocumentClient, createS3Client } from '../core/clients';
import type { Config } from '../core/config';
import { loadKeyring } from '../core/keyring-source';
import { PartRepository } from '../core/state/parts';
import { TransferRepository } from '../core/state/transfers';
import type { Logger } from './log';
import { EngineServer, type EngineOptions } from './server';

/** The engine with its dependencies built from configuration (AWS or the local stack). */
export async function createEngine(
  config: Config,
  options: Omit<EngineOptions, 'keyring'> & { maxBufferedBytes?: number; nullSink?: boolean },
  log: Logger,
): Promise<EngineServer> {
  const db = createDocumentClient(config);
  const s3 = createS3Client(config);
  const keyring = await loadKeyring(config);
  return new EngineServer(
    { ...options, keyring },
    {
      s3,
      parts: new PartRepository(db, config.tableName),
      transfers: new TransferRepository(db, config.tableName),
      guard: new BucketGuard(s3),
      log,
      maxBufferedBytes: options.maxBufferedBytes ?? 128 * 1024 * 1024,
      ...(options.nullSink ? { nullSink: true } : {}),
    },
    log,
  );
}
