import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  activeStatuses,
  maxTransportChanges,
  type HttpFallbackMode,
  type Transfer,
  type TransferStatus,
  type TransportChange,
} from '../../contracts';

/** The state-table item: the public record plus what only the services need. */
export interface TransferItem extends Transfer {
  ownerKeyId: string;
  /** S3 multipart upload id of a single-object HTTP (fallback) upload. */
  uploadId?: string;
  partSizeBytes?: number;
  contentType?: string;
  /**
   * The spec's http_fallback, for transfers from upload_setup/download_setup: whether the transfer may
   * continue over HTTPS ('false': no). Absent on older records and on /v1/fallback uploads.
   */
  httpFallback?: HttpFallbackMode;
}

/** A transfer that has just begun: nothing moved yet, created and updated now. */
export function newTransfer(
  fields: Pick<TransferItem, 'id' | 'bucket' | 'direction' | 'transport' | 'status' | 'keyPrefix' | 'files' | 'bytesTotal' | 'ownerKeyId'> &
    Partial<Pick<TransferItem, 'key' | 'uploadId' | 'partSizeBytes' | 'contentType' | 'httpFallback'>>,
  now: Date,
): TransferItem {
  const iso = now.toISOString();
  return { ...fields, bytesTransferred: 0, rateKbps: 0, createdAt: iso, updatedAt: iso, endedAt: null, error: null, transportChanges: [] };
}

const internalFields = ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'type'] as const;

function toItem(t: TransferItem) {
  return { pk: `TRANSFER#${t.id}`, sk: 'META', gsi1pk: 'TRANSFERS', gsi1sk: `${t.createdAt}#${t.id}`, type: 'transfer', ...t };
}

function fromItem(item: Record<string, unknown>): TransferItem {
  const copy = { ...item };
  for (const field of internalFields) delete copy[field];
  return copy as unknown as TransferItem;
}

export function publicTransfer(t: TransferItem): Transfer {
  const { ownerKeyId: _owner, uploadId: _upload, partSizeBytes: _part, contentType: _type, httpFallback: _fallback, ...rest } = t;
  // Records written before transport changes were kept have none.
  return { ...rest, transportChanges: rest.transportChanges ?? [] };
}

export function isActive(status: TransferStatus): boolean {
  return activeStatuses.includes(status);
}

export interface TransferListFilter {
  state: 'active' | 'completed' | 'all';
  /** Only these buckets (the caller's scope), or all. */
  buckets: '*' | readonly string[];
  limit: number;
  cursor?: string;
}

function encodeCursor(key: Record<string, unknown> | undefined): string | null {
  return key ? Buffer.from(JSON.stringify(key)).toString('base64url') : null;
}

export class InvalidCursorError extends Error {
  override name = 'InvalidCursorError';
}

function decodeCursor(cursor: string | undefined): Record<string, unknown> | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const key = value as Record<string, unknown>;
    const valid =
      typeof value === 'object' && value !== null &&
      ['pk', 'sk', 'gsi1pk', 'gsi1sk'].every((field) => typeof key[field] === 'string') &&
      Object.keys(key).length === 4;
    if (valid) return key;
  } catch {
    // fall through to the error below
  }
  throw new InvalidCursorError('cursor is not one this service returned');
}

/** Transfer records shared by the API and the engine, so any instance can answer for any transfer. */
export class TransferRepository {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async create(transfer: TransferItem): Promise<void> {
    await this.db.send(
      new PutCommand({ TableName: this.tableName, Item: toItem(transfer), ConditionExpression: 'attribute_not_exists(pk)' }),
    );
  }

  async get(id: string): Promise<TransferItem | undefined> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: { pk: `TRANSFER#${id}`, sk: 'META' } }));
    return Item ? fromItem(Item) : undefined;
  }

  /** Newest first. Filtering happens after DynamoDB's page limit, so pages may be short; follow the cursor. */
  async list(filter: TransferListFilter): Promise<{ transfers: TransferItem[]; nextCursor: string | null }> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ':k': 'TRANSFERS' };
    const conditions: string[] = [];
    if (filter.state !== 'all') {
      const statuses = filter.state === 'active' ? activeStatuses : (['COMPLETED', 'FAILED', 'CANCELED'] as const);
      statuses.forEach((s, i) => (values[`:s${i}`] = s));
      names['#status'] = 'status';
      conditions.push(`#status IN (${statuses.map((_, i) => `:s${i}`).join(', ')})`);
    }
    if (filter.buckets !== '*') {
      if (filter.buckets.length === 0) return { transfers: [], nextCursor: null };
      filter.buckets.forEach((b, i) => (values[`:b${i}`] = b));
      names['#bucket'] = 'bucket';
      conditions.push(`#bucket IN (${filter.buckets.map((_, i) => `:b${i}`).join(', ')})`);
    }
    const page = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :k',
        ...(conditions.length > 0 ? { FilterExpression: conditions.join(' AND ') } : {}),
        ExpressionAttributeNames: conditions.length > 0 ? names : undefined,
        ExpressionAttributeValues: values,
        ScanIndexForward: false,
        Limit: filter.limit,
        ExclusiveStartKey: decodeCursor(filter.cursor),
      }),
    );
    return { transfers: (page.Items ?? []).map(fromItem), nextCursor: encodeCursor(page.LastEvaluatedKey) };
  }

  /**
   * Moves an active transfer to a new status. Returns the updated record, or undefined when the
   * transfer had already ended (the conditional write keeps an ended transfer ended).
   */
  async finish(
    id: string,
    status: Extract<TransferStatus, 'COMPLETED' | 'FAILED' | 'CANCELED'>,
    now: Date,
    extra: { bytesTransferred?: number; error?: { code: string; message: string } } = {},
  ): Promise<TransferItem | undefined> {
    const values: Record<string, unknown> = { ':status': status, ':now': now.toISOString(), ':error': extra.error ?? null };
    let update = 'SET #status = :status, updatedAt = :now, endedAt = :now, #error = :error';
    if (extra.bytesTransferred !== undefined) {
      update += ', bytesTransferred = :bytes';
      values[':bytes'] = extra.bytesTransferred;
    }
    return this.updateIfActive(id, update, values, { '#error': 'error' });
  }

  /** QUEUED or PAUSED → RUNNING when a session starts; an ended transfer is left alone (returns false). */
  async markRunning(id: string, now: Date): Promise<boolean> {
    return (await this.updateIfActive(id, 'SET #status = :running, updatedAt = :now', { ':running': 'RUNNING', ':now': now.toISOString() })) !== undefined;
  }

  /**
   * One conditional update of a transfer that is still active: the updated record, or undefined when
   * the transfer is unknown or has ended (the condition keeps an ended transfer ended). `#status` is bound.
   */
  private async updateIfActive(id: string, update: string, values: Record<string, unknown>, names: Record<string, string> = {}): Promise<TransferItem | undefined> {
    const active = Object.fromEntries(activeStatuses.map((status, i) => [`:a${i}`, status]));
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: `TRANSFER#${id}`, sk: 'META' },
          UpdateExpression: update,
          ConditionExpression: `attribute_exists(pk) AND #status IN (${Object.keys(active).join(', ')})`,
          ExpressionAttributeNames: { '#status': 'status', ...names },
          ExpressionAttributeValues: { ...values, ...active },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Attributes ? fromItem(Attributes) : undefined;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  /**
   * Live progress from a running session; a QUEUED transfer becomes RUNNING, a PAUSED one stays paused,
   * an ended one is left alone (returns false).
   */
  async updateProgress(id: string, bytesTransferred: number, rateKbps: number, now: Date): Promise<boolean> {
    const values = { ':bytes': bytesTransferred, ':rate': rateKbps, ':now': now.toISOString() };
    const attempts = [
      { set: ', #status = :running', condition: '#status IN (:queued, :running)', extra: { ':queued': 'QUEUED', ':running': 'RUNNING' } },
      { set: '', condition: '#status = :paused', extra: { ':paused': 'PAUSED' } },
    ];
    for (const attempt of attempts) {
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { pk: `TRANSFER#${id}`, sk: 'META' },
            UpdateExpression: `SET bytesTransferred = :bytes, rateKbps = :rate, updatedAt = :now${attempt.set}`,
            ConditionExpression: `attribute_exists(pk) AND ${attempt.condition}`,
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ...values, ...attempt.extra },
          }),
        );
        return true;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }
    return false;
  }

  /**
   * Records a switch of transport (kept: the last maxTransportChanges) and sets the transfer's transport;
   * a QUEUED transfer becomes RUNNING. Undefined when the transfer is unknown or has ended.
   */
  async recordTransportChange(id: string, change: TransportChange, now: Date): Promise<TransferItem | undefined> {
    // list_append is atomic, so concurrent switches are all kept; trimming is a separate step.
    let item = await this.updateIfActive(id, 'SET transportChanges = list_append(if_not_exists(transportChanges, :empty), :change), transport = :transport, updatedAt = :now', {
      ':change': [change],
      ':empty': [],
      ':transport': change.transport === 'http' ? 'http' : 'high-speed',
      ':now': now.toISOString(),
    });
    if (!item) return undefined;
    const excess = item.transportChanges.length - maxTransportChanges;
    if (excess > 0 && (await this.trimTransportChanges(id, item.transportChanges.length, excess))) {
      item = { ...item, transportChanges: item.transportChanges.slice(excess) };
    }
    if (item.status === 'QUEUED' && (await this.startIfQueued(id, now))) item = { ...item, status: 'RUNNING' };
    return item;
  }

  /** Drops the oldest `count` changes if the list still has `length` entries (else a later call trims). */
  private async trimTransportChanges(id: string, length: number, count: number): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: `TRANSFER#${id}`, sk: 'META' },
          UpdateExpression: `REMOVE ${Array.from({ length: count }, (_, i) => `transportChanges[${i}]`).join(', ')}`,
          ConditionExpression: 'size(transportChanges) = :length',
          ExpressionAttributeValues: { ':length': length },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** QUEUED → RUNNING (work has begun outside an engine session); false for any other status. */
  async startIfQueued(id: string, now: Date): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: `TRANSFER#${id}`, sk: 'META' },
          UpdateExpression: 'SET #status = :running, updatedAt = :now',
          ConditionExpression: '#status = :queued',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':running': 'RUNNING', ':queued': 'QUEUED', ':now': now.toISOString() },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** Adds bytes that moved outside an engine session (HTTP fallback) to an active transfer's progress. */
  async addBytesTransferred(id: string, bytes: number, now: Date): Promise<boolean> {
    const update = 'SET bytesTransferred = if_not_exists(bytesTransferred, :zero) + :bytes, updatedAt = :now';
    return (await this.updateIfActive(id, update, { ':bytes': bytes, ':zero': 0, ':now': now.toISOString() })) !== undefined;
  }

  async recordUploadId(uploadId: string, transferId: string): Promise<void> {
    await this.db.send(
      new PutCommand({ TableName: this.tableName, Item: { pk: `UPLOAD#${uploadId}`, sk: 'UPLOAD', transferId } }),
    );
  }

  async transferIdForUpload(uploadId: string): Promise<string | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `UPLOAD#${uploadId}`, sk: 'UPLOAD' } }),
    );
    return Item?.transferId as string | undefined;
  }
}
