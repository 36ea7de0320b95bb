import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * The durable parts of a transfer's files, in the state table beside the transfer (pk `TRANSFER#<id>`).
 * A part is recorded only after S3 accepted it, so any engine can resume the same multipart upload and
 * never re-send a recorded part (DESIGN.md §1).
 */
export interface PartRecord {
  transferId: string;
  fileIndex: number;
  /** S3 part number, from 1. */
  partNumber: number;
  etag: string;
  sizeBytes: number;
  /** Hex SHA-256 of the part's bytes: the composite checksum is built from these. */
  sha256: string;
  uploadId: string;
  recordedAt: string;
  /** How the part reached S3: absent or `udp` for the engine, `http` for a presigned URL (HTTP fallback). */
  transport?: 'udp' | 'http';
}

export type FileStatus = 'open' | 'committed' | 'failed';

export interface FileRecord {
  transferId: string;
  fileIndex: number;
  key: string;
  sizeBytes: number;
  /** The multipart upload, or null for a file stored with one PutObject. */
  uploadId: string | null;
  status: FileStatus;
  /** The verified composite checksum, once committed. */
  checksum: string | null;
  /** The checksum the sender declared before the upload began, stored as object metadata then (or null). */
  declaredChecksum: string | null;
  etag: string | null;
  /** Why the file failed, when it did. */
  error: string | null;
  updatedAt: string;
}

const pkOf = (transferId: string) => `TRANSFER#${transferId}`;
const pad = (value: number, width: number) => String(value).padStart(width, '0');
const fileSk = (fileIndex: number) => `FILE#${pad(fileIndex, 6)}`;
const partPrefix = (fileIndex: number) => `PART#${pad(fileIndex, 6)}#`;
const partSk = (fileIndex: number, partNumber: number) => `${partPrefix(fileIndex)}${pad(partNumber, 5)}`;

function strip<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, type: _type, ...rest } = item;
  return rest as T;
}

export class PartRepository {
  constructor(
    readonly db: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** Idempotent: recording the same part again (a retried write) replaces it with the same facts. */
  async recordPart(part: Omit<PartRecord, 'recordedAt'>, now: Date): Promise<void> {
    const item: PartRecord = { ...part, recordedAt: now.toISOString() };
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: pkOf(part.transferId), sk: partSk(part.fileIndex, part.partNumber), type: 'part', ...item },
      }),
    );
  }

  /** A file's recorded parts in part-number order (of every upload id the file ever had). */
  partsOf(transferId: string, fileIndex: number): Promise<PartRecord[]> {
    return this.query<PartRecord>(transferId, partPrefix(fileIndex));
  }

  /** Every recorded part of the transfer, ordered by file then part number. */
  allParts(transferId: string): Promise<PartRecord[]> {
    return this.query<PartRecord>(transferId, 'PART#');
  }

  async getFile(transferId: string, fileIndex: number): Promise<FileRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: pkOf(transferId), sk: fileSk(fileIndex) }, ConsistentRead: true }),
    );
    return Item ? strip<FileRecord>(Item) : undefined;
  }

  /** Writes the file record unless the file is already committed (false then): a committed file stays so. */
  async putFile(file: FileRecord): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: pkOf(file.transferId), sk: fileSk(file.fileIndex), type: 'file', ...file },
          ConditionExpression: 'attribute_not_exists(pk) OR #status <> :committed',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':committed': 'committed' },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /**
   * Writes an open file record where there is none or only a failed one: false when another writer
   * (the engine, or a concurrent call) holds an open or committed record, which the caller then uses.
   */
  async claimFile(file: FileRecord): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: pkOf(file.transferId), sk: fileSk(file.fileIndex), type: 'file', ...file },
          ConditionExpression: 'attribute_not_exists(pk) OR #status = :failed',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':failed': 'failed' },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** open → committed. False when the file was not open (already committed, failed or unknown). */
  markCommitted(transferId: string, fileIndex: number, result: { checksum: string; etag: string | null }, now: Date): Promise<boolean> {
    return this.transition(transferId, fileIndex, 'committed', { checksum: result.checksum, etag: result.etag, error: null }, now);
  }

  /** open → failed. False when the file was not open. */
  markFailed(transferId: string, fileIndex: number, reason: string, now: Date): Promise<boolean> {
    return this.transition(transferId, fileIndex, 'failed', { error: reason }, now);
  }

  /** Every file record of the transfer, in index order. */
  files(transferId: string): Promise<FileRecord[]> {
    return this.query<FileRecord>(transferId, 'FILE#');
  }

  private async transition(
    transferId: string,
    fileIndex: number,
    status: Exclude<FileStatus, 'open'>,
    fields: Record<string, unknown>,
    now: Date,
  ): Promise<boolean> {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':status': status, ':open': 'open', ':now': now.toISOString() };
    const sets = ['#status = :status', 'updatedAt = :now'];
    Object.entries(fields).forEach(([name, value], i) => {
      names[`#f${i}`] = name;
      values[`:f${i}`] = value;
      sets.push(`#f${i} = :f${i}`);
    });
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: pkOf(transferId), sk: fileSk(fileIndex) },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: '#status = :open',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** All pages: a file has at most 10,000 parts, a transfer as many files as its manifest. */
  private async query<T>(transferId: string, skPrefix: string): Promise<T[]> {
    const items: T[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': pkOf(transferId), ':prefix': skPrefix },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) items.push(strip<T>(item));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }
}
