import { existsSync } from 'node:fs';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';

export interface ConsoleProps {
  /** The built console (`web/dist`). Deployed only if the directory exists; otherwise the bucket stays empty. */
  readonly assetDir: string;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Hosting for the browser console: a private S3 bucket (no public access, TLS only, server access logs)
 * served by CloudFront through Origin Access Control, HTTPS only (HTTP redirects), with security headers.
 * The files are uploaded from `web/dist` when it has been built (`deploy`, with the API's URL).
 */
export class Console extends Construct {
  readonly bucket: s3.Bucket;
  readonly logBucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  /** `https://<distribution>.cloudfront.net` — also the console's origin for CORS. */
  readonly url: string;
  deployment?: s3deploy.BucketDeployment;
  private readonly assetDir: string;

  constructor(scope: Construct, id: string, props: ConsoleProps) {
    super(scope, id);

    this.logBucket = new s3.Bucket(this, 'LogBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      // CloudFront standard logging writes with ACLs.
      objectOwnership: s3.ObjectOwnership.OBJECT_WRITER,
      lifecycleRules: [{ id: 'expire-logs', expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.logBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket itself; logging its own access would log into itself.',
    });

    this.bucket = new s3.Bucket(this, 'SiteBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: 'site-bucket/',
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const headers = new cloudfront.ResponseHeadersPolicy(this, 'SecurityHeaders', {
      comment: 'Slipstream console security headers',
      securityHeadersBehavior: {
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), includeSubdomains: true, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override: true },
        xssProtection: { protection: true, modeBlock: true, override: true },
        // Only directives that cannot break the console's calls to the API and to S3 presigned URLs.
        contentSecurityPolicy: { contentSecurityPolicy: "frame-ancestors 'none'; object-src 'none'; base-uri 'self'", override: true },
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'Slipstream console',
      defaultRootObject: 'index.html',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: headers,
        compress: true,
      },
      // A single-page app: unknown paths render index.html (S3 answers 403 for missing keys through OAC).
      errorResponses: [403, 404].map((httpStatus) => ({
        httpStatus,
        responseHttpStatus: 200,
        responsePagePath: '/index.html',
        ttl: Duration.seconds(10),
      })),
      enableLogging: true,
      logBucket: this.logBucket,
      logFilePrefix: 'cloudfront/',
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
    });
    Validations.of(this.distribution).acknowledge({
      id: 'AwsSolutions-CFR1',
      reason: 'The console is for users anywhere; there is no country to exclude. Access is controlled by API keys, not geography.',
    });
    Validations.of(this.distribution).acknowledge({
      id: 'AwsSolutions-CFR2',
      reason:
        'The distribution serves static files only (GET/HEAD, cached); there is nothing for WAF rules to protect. ' +
        'The API enforces its own authentication and stage throttling. Attach a web ACL here if your policy requires one.',
    });
    Validations.of(this.distribution).acknowledge({
      id: 'AwsSolutions-CFR4',
      reason:
        'Without a custom domain the distribution uses the default *.cloudfront.net certificate, whose minimum protocol CloudFront fixes; ' +
        'with a custom domain and ACM certificate, set minimumProtocolVersion TLS_V1_2_2021.',
    });

    this.url = `https://${this.distribution.distributionDomainName}`;

    this.assetDir = props.assetDir;
  }

  /**
   * Uploads the built console with its `console/config.json` (where the page finds the API), once the
   * API exists; a no-op while `web/dist` is not built.
   */
  deploy(settings: { apiUrl: string }): void {
    if (!existsSync(this.assetDir) || this.deployment) return;
    this.deployment = new s3deploy.BucketDeployment(this, 'Deploy', {
      sources: [s3deploy.Source.asset(this.assetDir), s3deploy.Source.jsonData('console/config.json', { apiUrl: settings.apiUrl })],
      destinationBucket: this.bucket,
      distribution: this.distribution,
      distributionPaths: ['/*'],
      memoryLimit: 512,
    });
    acknowledgeBucketDeployment(this, this.bucket);
  }
}

/**
 * BucketDeployment's handler is a singleton function that aws-cdk-lib adds at the stack root, with the
 * role aws-cdk-lib writes for it; each of its findings is acknowledged here, by exact finding id.
 */
function acknowledgeBucketDeployment(scope: Construct, bucket: s3.Bucket): void {
  const stack = Stack.of(scope);
  const bucketLogicalId = stack.resolve(stack.getLogicalId(bucket.node.defaultChild as s3.CfnBucket)) as string;
  const findings: Record<string, string> = {
    'AwsSolutions-L1': 'aws-cdk-lib picks the runtime of its BucketDeployment handler (Python with the AWS CLI layer); it moves with aws-cdk-lib upgrades.',
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]':
      'The CDK BucketDeployment handler role is defined by aws-cdk-lib; the managed policy only lets it write its own logs.',
    'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'aws-cdk-lib grants the deployment handler read access to the CDK asset bucket to fetch the console zip.',
    'AwsSolutions-IAM5[Action::s3:GetObject*]': 'aws-cdk-lib grants the deployment handler read access to the CDK asset bucket to fetch the console zip.',
    'AwsSolutions-IAM5[Action::s3:List*]': 'aws-cdk-lib grants the deployment handler listing of the source and console buckets to sync (and prune) the files.',
    'AwsSolutions-IAM5[Action::s3:Abort*]': 'aws-cdk-lib grants the deployment handler write access to the console bucket (multipart uploads of large files).',
    'AwsSolutions-IAM5[Action::s3:DeleteObject*]': 'aws-cdk-lib grants the deployment handler deletes in the console bucket to prune files of older builds.',
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]':
      'The console zip is a CDK asset: any key of the bootstrap asset bucket, which only holds this account and region assets.',
    [`AwsSolutions-IAM5[Resource::<${bucketLogicalId}.Arn>/*]`]: 'The deployment handler writes every file of the console, i.e. any key of the console bucket (and only that bucket).',
    'AwsSolutions-IAM5[Resource::*]': 'cloudfront:CreateInvalidation/GetInvalidation, used to refresh the console after an upload, take no resource ARN in the policy aws-cdk-lib writes.',
  };
  for (const child of stack.node.children) {
    if (!child.node.id.startsWith('Custom::CDKBucketDeployment')) continue;
    for (const [id, reason] of Object.entries(findings)) Validations.of(child).acknowledge({ id, reason });
  }
}
