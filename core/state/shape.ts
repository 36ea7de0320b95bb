/**
 * The state table's shape (single-table design): `pk`/`sk` keys, one GSI for listings and a TTL on
 * `expiresAt`. The CDK state construct declares it for AWS; `table.ts` creates it elsewhere.
 */
export const stateTableShape = {
  partitionKey: 'pk',
  sortKey: 'sk',
  listIndexName: 'gsi1',
  listPartitionKey: 'gsi1pk',
  listSortKey: 'gsi1sk',
  ttlAttribute: 'expiresAt',
} as const;
