import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { stateTableShape } from '../../core/state/shape';


/** Item-level reads and writes; no table management (create, delete, update, TTL changes). */
const readWriteActions = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:ConditionCheckItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:DescribeTable',
];

export interface StateProps {
  /** RETAIN by default: the table holds API keys and transfer records. */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * All service state in one DynamoDB table (single-table design): API keys, access keys, bucket
 * preferences, transfers and their durable parts. On-demand capacity, point-in-time recovery,
 * encryption with the AWS-managed KMS key, and a TTL on `expiresAt` that clears expired access keys and
 * finished transfers.
 */
export class State extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: StateProps = {}) {
    super(scope, id);
    const s = stateTableShape;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: s.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: s.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: s.ttlAttribute,
      deletionProtection: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: s.listIndexName,
      partitionKey: { name: s.listPartitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: s.listSortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }

  get tableName(): string {
    return this.table.tableName;
  }

  /**
   * Item reads and writes on the table and its one index, named exactly (`.../index/gsi1`, not
   * `.../index/*` as `Table.grantReadWriteData` would).
   */
  grantReadWrite(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: readWriteActions,
      resourceArns: [this.table.tableArn, `${this.table.tableArn}/index/${stateTableShape.listIndexName}`],
    });
  }
}
