import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';

import { stateTableShape } from './shape';

/** Creates the state table where no CDK stack does (the local stack, tests); waits until it is ACTIVE. */
export async function ensureStateTable(client: DynamoDBClient, tableName: string, timeoutMs = 30_000): Promise<void> {
  const s = stateTableShape;
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: s.partitionKey, AttributeType: 'S' },
          { AttributeName: s.sortKey, AttributeType: 'S' },
          { AttributeName: s.listPartitionKey, AttributeType: 'S' },
          { AttributeName: s.listSortKey, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: s.partitionKey, KeyType: 'HASH' },
          { AttributeName: s.sortKey, KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: s.listIndexName,
            KeySchema: [
              { AttributeName: s.listPartitionKey, KeyType: 'HASH' },
              { AttributeName: s.listSortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') break;
    if (Date.now() > deadline) throw new Error(`state table ${tableName} did not become ACTIVE within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: s.ttlAttribute, Enabled: true },
      }),
    );
  } catch (error) {
    // A table whose TTL is already on refuses to turn it on again. dynalite has no TTL at all
    // (UnknownOperationException): readers check `expiresAt` themselves, so expiry still holds.
    const name = (error as { name?: string }).name;
    const message = error instanceof Error ? error.message : '';
    if (!(name === 'UnknownOperationException' || /already enabled|TimeToLive is already/i.test(message))) throw error;
  }
}
