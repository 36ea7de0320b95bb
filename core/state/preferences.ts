import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  bucketPreferencesSchema,
  defaultBucketPreferences,
  type BucketPreferences,
  type BucketPreferencesPatch,
} from '../../contracts';

export interface StoredPreferences {
  preferences: BucketPreferences;
  updatedAt: string | null;
}

/** Applies a partial update and re-validates the whole (e.g. min ≤ target across old and new fields). */
export function mergePreferences(current: BucketPreferences, patch: BucketPreferencesPatch): BucketPreferences {
  return bucketPreferencesSchema.parse({
    upload: { ...current.upload, ...patch.upload },
    download: { ...current.download, ...patch.download },
    ratePolicy: patch.ratePolicy ?? current.ratePolicy,
    httpFallback: patch.httpFallback ?? current.httpFallback,
  });
}

export class PreferencesRepository {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** A bucket nobody configured gets the defaults. */
  async get(bucket: string): Promise<StoredPreferences> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `BUCKET#${bucket}`, sk: 'PREFS' } }),
    );
    if (!Item) return { preferences: defaultBucketPreferences, updatedAt: null };
    // Stored by an older version with fewer fields: fill from the defaults rather than fail.
    const merged = mergePreferences(defaultBucketPreferences, Item.preferences as BucketPreferencesPatch);
    return { preferences: merged, updatedAt: Item.updatedAt as string };
  }

  async put(bucket: string, preferences: BucketPreferences, now: Date): Promise<StoredPreferences> {
    const updatedAt = now.toISOString();
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: `BUCKET#${bucket}`, sk: 'PREFS', bucket, preferences, updatedAt },
      }),
    );
    return { preferences, updatedAt };
  }
}
