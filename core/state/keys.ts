import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { Action, ApiKeySummary } from '../../contracts';
import type { Principal } from './principal';
import { hashSecret, newId, newSecret, secretMatches } from './secrets';

const apiKeyPattern = /^sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const accessKeyIdPattern = /^ak_[0-9a-f]{16}$/;

interface ApiKeyItem {
  pk: string;
  sk: 'KEY';
  gsi1pk: 'KEYS';
  gsi1sk: string;
  id: string;
  name: string;
  secretHash: string;
  buckets: string[];
  actions: Action[];
  createdAt: string;
  expiresAtIso: string | null;
  /** Absent until revoked, so `if_not_exists` keeps the first revocation time. */
  revokedAt?: string;
}

interface AccessKeyItem {
  pk: string;
  sk: 'ACCESS';
  id: string;
  secretHash: string;
  bucket: string;
  actions: Action[];
  apiKeyId: string;
  /** Unix seconds: DynamoDB's TTL deletes it, and reads check it (TTL deletion lags). */
  expiresAt: number;
}

function summary(item: ApiKeyItem): ApiKeySummary {
  return {
    id: item.id,
    name: item.name,
    buckets: item.buckets,
    actions: item.actions,
    createdAt: item.createdAt,
    expiresAt: item.expiresAtIso,
    revokedAt: item.revokedAt ?? null,
  };
}

/** API keys (long-lived, `sk_…`) and the short-lived bucket access keys minted from them. Only hashes are stored. */
export class KeyRepository {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async createApiKey(input: {
    name: string;
    buckets: string[];
    actions: Action[];
    expiresAt?: Date;
    now: Date;
  }): Promise<ApiKeySummary & { secret: string }> {
    const id = newId();
    const secret = newSecret();
    const item: ApiKeyItem = {
      pk: `KEY#${id}`,
      sk: 'KEY',
      gsi1pk: 'KEYS',
      gsi1sk: `${input.now.toISOString()}#${id}`,
      id,
      name: input.name,
      secretHash: hashSecret(secret),
      buckets: [...new Set(input.buckets)],
      actions: [...new Set(input.actions)],
      createdAt: input.now.toISOString(),
      expiresAtIso: input.expiresAt?.toISOString() ?? null,
    };
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    return { ...summary(item), secret: `sk_${id}_${secret}` };
  }

  /** The principal for a bearer token, or undefined when it is unknown, wrong, expired or revoked. */
  async verifyApiKey(token: string, now: Date): Promise<Principal | undefined> {
    const match = apiKeyPattern.exec(token);
    if (!match) return undefined;
    const [, id, secret] = match as unknown as [string, string, string];
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: { pk: `KEY#${id}`, sk: 'KEY' } }));
    const item = Item as ApiKeyItem | undefined;
    if (!item || !secretMatches(secret, item.secretHash) || item.revokedAt) return undefined;
    if (item.expiresAtIso && new Date(item.expiresAtIso) <= now) return undefined;
    const buckets = item.buckets.includes('*') ? '*' : item.buckets;
    return { kind: 'api-key', keyId: id, apiKeyId: id, buckets, actions: item.actions };
  }

  async listApiKeys(limit = 1000): Promise<ApiKeySummary[]> {
    const items: ApiKeyItem[] = [];
    let cursor: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'gsi1',
          KeyConditionExpression: 'gsi1pk = :k',
          ExpressionAttributeValues: { ':k': 'KEYS' },
          ExclusiveStartKey: cursor,
          Limit: Math.min(limit - items.length, 100),
        }),
      );
      items.push(...((page.Items ?? []) as ApiKeyItem[]));
      cursor = page.LastEvaluatedKey;
    } while (cursor && items.length < limit);
    return items.map(summary);
  }

  async getApiKey(id: string): Promise<ApiKeySummary | undefined> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: { pk: `KEY#${id}`, sk: 'KEY' } }));
    return Item ? summary(Item as ApiKeyItem) : undefined;
  }

  /** Returns false when no such key exists. Revoking twice keeps the first time. */
  async revokeApiKey(id: string, now: Date): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: `KEY#${id}`, sk: 'KEY' },
          UpdateExpression: 'SET revokedAt = if_not_exists(revokedAt, :now)',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':now': now.toISOString() },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async createAccessKey(input: {
    bucket: string;
    actions: Action[];
    apiKeyId: string;
    ttlSeconds: number;
    now: Date;
  }): Promise<{ id: string; secret: string; expiresAt: Date }> {
    const id = `ak_${newId()}`;
    const secret = newSecret();
    const expiresAt = new Date(input.now.getTime() + input.ttlSeconds * 1000);
    const item: AccessKeyItem = {
      pk: `ACCESS#${id}`,
      sk: 'ACCESS',
      id,
      secretHash: hashSecret(secret),
      bucket: input.bucket,
      actions: input.actions,
      apiKeyId: input.apiKeyId,
      expiresAt: Math.floor(expiresAt.getTime() / 1000),
    };
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: item }));
    return { id, secret, expiresAt };
  }

  /** An access key is only as good as the API key it came from: revoking that revokes this. */
  async verifyAccessKey(id: string, secret: string, now: Date): Promise<Principal | undefined> {
    if (!accessKeyIdPattern.test(id)) return undefined;
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: { pk: `ACCESS#${id}`, sk: 'ACCESS' } }));
    const item = Item as AccessKeyItem | undefined;
    if (!item || !secretMatches(secret, item.secretHash) || item.expiresAt * 1000 <= now.getTime()) return undefined;
    const parent = await this.getApiKey(item.apiKeyId);
    if (!parent || parent.revokedAt || (parent.expiresAt && new Date(parent.expiresAt) <= now)) return undefined;
    return { kind: 'access-key', keyId: id, apiKeyId: item.apiKeyId, buckets: [item.bucket], actions: item.actions };
  }
}
