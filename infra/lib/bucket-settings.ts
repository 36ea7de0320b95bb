import { CustomResource, Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, type IConstruct } from 'constructs';
import { bundleLambdas } from './bundle';
import { NodeFunction } from './node-function';

/** S3 actions that apply to the bucket itself (resource `arn:...:bucket`). */
const bucketLevelActions = ['s3:ListBucket', 's3:GetBucketObjectLockConfiguration'] as const;
/** S3 actions that apply to objects (resource `arn:...:bucket/*`). */
const objectLevelActions = ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'] as const;

export type ServedBucketAction = (typeof bucketLevelActions)[number] | (typeof objectLevelActions)[number];

export interface ServedBucketsProps {
  /** Names of existing buckets; the stack imports them and never owns (or deletes) them. */
  readonly bucketNames: readonly string[];
  /** Origins allowed to call S3 from a browser (the console's CloudFront URL and `consoleOrigins`). */
  readonly allowedOrigins: readonly string[];
  readonly abortIncompleteMultipartAfterDays: number;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The buckets Slipstream serves, and the two settings it needs on each: a CORS rule so the browser console
 * can PUT parts straight to S3 through presigned URLs (and read the ETag), and a lifecycle rule that aborts
 * incomplete multipart uploads after N days (so abandoned uploads stop costing storage).
 *
 * The buckets already exist and hold the owner's data, so they are imported by name, not created. Imported
 * buckets take no CORS or lifecycle through L2, and a plain AwsCustomResource PutBucketCors /
 * PutBucketLifecycleConfiguration would replace the bucket's whole configuration, deleting the owner's
 * own rules. So a small custom resource (infra/lambda/bucket-settings.ts) reads the configuration and
 * adds, updates or removes only the rules with Slipstream's IDs. Its role may only read and write those
 * two configurations, and only on the served buckets.
 */
export class ServedBuckets extends Construct {
  readonly buckets: readonly s3.IBucket[];

  constructor(scope: Construct, id: string, props: ServedBucketsProps) {
    super(scope, id);
    this.buckets = props.bucketNames.map((name) => s3.Bucket.fromBucketName(this, `Bucket-${name}`, name));

    const bundle = bundleLambdas({ bucketSettings: 'infra/lambda/bucket-settings.ts' }).bucketSettings!;
    const settings = new NodeFunction(this, 'Settings', {
      bundleDir: bundle,
      description: 'Deploy time only: keeps the Slipstream CORS and abort-multipart lifecycle rules on served buckets',
      logRetention: props.logRetention,
      memorySize: 256,
      timeout: Duration.minutes(2),
    });
    settings.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        // DeleteBucketCors and DeleteBucketLifecycle are authorized by these same two Put actions.
        actions: ['s3:GetBucketCORS', 's3:PutBucketCORS', 's3:GetLifecycleConfiguration', 's3:PutLifecycleConfiguration'],
        resources: this.buckets.map((b) => b.bucketArn),
      }),
    );

    for (const bucket of this.buckets) {
      const resource = new CustomResource(this, `Settings-${bucket.node.id.replace(/^Bucket-/, '')}`, {
        serviceToken: settings.function.functionArn,
        resourceType: 'Custom::SlipstreamBucketSettings',
        properties: {
          BucketName: bucket.bucketName,
          AllowedOrigins: [...props.allowedOrigins],
          AbortIncompleteMultipartAfterDays: String(props.abortIncompleteMultipartAfterDays),
        },
      });
      resource.node.addDependency(settings);
    }
  }

  /**
   * Grants the given S3 actions on every served bucket, each on the resource it applies to: bucket-level
   * actions on `arn:...:bucket`, object-level actions on `arn:...:bucket/*`.
   */
  grant(grantee: iam.IGrantable, ...actions: ServedBucketAction[]): void {
    const onBucket = actions.filter((a) => (bucketLevelActions as readonly string[]).includes(a));
    const onObjects = actions.filter((a) => (objectLevelActions as readonly string[]).includes(a));
    if (onBucket.length > 0) {
      iam.Grant.addToPrincipal({ grantee, actions: onBucket, resourceArns: this.buckets.map((b) => b.bucketArn) });
    }
    if (onObjects.length > 0) {
      iam.Grant.addToPrincipal({ grantee, actions: onObjects, resourceArns: this.buckets.map((b) => b.arnForObjects('*')) });
      const principal = grantee.grantPrincipal as Partial<IConstruct>;
      const target = principal.node ? (principal as IConstruct) : undefined;
      for (const bucket of this.buckets) {
        if (!target) continue;
        Validations.of(target).acknowledge({
          id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket.bucketName}/*]`,
          reason:
            `Object actions (${onObjects.join(', ')}) on any key of served bucket ${bucket.bucketName}: ` +
            'users pick the keys they upload and download, so the bucket is the narrowest scope known at deploy time.',
        });
      }
    }
  }
}
