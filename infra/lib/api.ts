import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { ServedBuckets } from './bucket-settings';
import { bundleLambdas } from './bundle';
import { NodeFunction } from './node-function';
import type { TokenKeys } from './secrets';
import type { State } from './state';

/** One Lambda function per route group (functions/app.ts `routeGroups`), so each gets only its own IAM. */
export const routeGroups = ['bucket', 'files', 'preferences', 'objects', 'fallback', 'transfers', 'keys'] as const;
export type RouteGroup = (typeof routeGroups)[number];

/** The Lambda entry file of each group; each exports `handler`. */
export const lambdaEntries: Record<RouteGroup, string> = {
  bucket: 'functions/lambda/bucket.ts',
  files: 'functions/lambda/files.ts',
  preferences: 'functions/lambda/preferences.ts',
  objects: 'functions/lambda/objects.ts',
  fallback: 'functions/lambda/fallback.ts',
  transfers: 'functions/lambda/transfers.ts',
  keys: 'functions/lambda/keys.ts',
};

const { GET, PUT, OPTIONS, ANY } = apigw.HttpMethod;

/**
 * HTTP API routes → route group. `/health` is a literal path, so it wins over `/{bucket}`.
 * The app answers CORS itself (functions/app.ts), so the API has no CORS configuration of its own and
 * every route also passes OPTIONS (preflight) to its function: `ANY` includes it, the others list it.
 */
export const apiRoutes: readonly { path: string; methods: apigw.HttpMethod[]; group: RouteGroup }[] = [
  { path: '/health', methods: [GET, OPTIONS], group: 'bucket' },
  // S3 style: ?faspConnectionInfo (IBM COS compatible) and ?transferPreferences.
  { path: '/{bucket}', methods: [GET, PUT, OPTIONS], group: 'bucket' },
  { path: '/files/{proxy+}', methods: [ANY], group: 'files' },
  { path: '/v1/buckets/{bucket}/preferences', methods: [ANY], group: 'preferences' },
  // The console's bucket browser: bucket list, object listing, presigned GETs for Standard downloads.
  { path: '/v1/buckets', methods: [ANY], group: 'objects' },
  { path: '/v1/buckets/{bucket}/objects', methods: [ANY], group: 'objects' },
  { path: '/v1/buckets/{bucket}/download-urls', methods: [ANY], group: 'objects' },
  { path: '/v1/fallback/{proxy+}', methods: [ANY], group: 'fallback' },
  { path: '/companion/{proxy+}', methods: [ANY], group: 'fallback' },
  // Continuing a transfer over HTTPS (HTTP fallback). Path variables outrank the greedy
  // /v1/transfers/{proxy+} below, so these reach the fallback function, which has the S3 grants.
  ...['transport', 'finish', 'downloads', 'files/{index}/upload', 'files/{index}/parts', 'files/{index}/parts/{partNumber}', 'files/{index}/complete'].map(
    (rest) => ({ path: `/v1/transfers/{id}/${rest}`, methods: [ANY], group: 'fallback' as const }),
  ),
  { path: '/v1/transfers', methods: [ANY], group: 'transfers' },
  { path: '/v1/transfers/{proxy+}', methods: [ANY], group: 'transfers' },
  { path: '/v1/keys', methods: [ANY], group: 'keys' },
  { path: '/v1/keys/{proxy+}', methods: [ANY], group: 'keys' },
];

export interface ApiProps {
  readonly state: State;
  readonly tokenKeys: TokenKeys;
  readonly servedBuckets: ServedBuckets;
  readonly bucketNames: readonly string[];
  readonly engineHost: string;
  readonly enginePort: number;
  readonly accessKeyTtlSeconds: number;
  readonly tokenTtlSeconds: number;
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  readonly logRetention: logs.RetentionDays;
}

/**
 * The control plane: an HTTP API in front of one Lambda function per route group, with stage access
 * logs and throttling. Each function's role gets exactly what its routes use.
 */
export class Api extends Construct {
  readonly httpApi: apigw.HttpApi;
  readonly stage: apigw.HttpStage;
  readonly functions: Readonly<Record<RouteGroup, NodeFunction>>;
  /** Base URL of the API (no trailing slash). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const bundles = bundleLambdas(lambdaEntries);
    const baseEnvironment = {
      SLIPSTREAM_TABLE_NAME: props.state.tableName,
      SLIPSTREAM_BUCKETS: props.bucketNames.join(','),
      SLIPSTREAM_ENGINE_HOST: props.engineHost,
      SLIPSTREAM_ENGINE_PORT: String(props.enginePort),
      SLIPSTREAM_ACCESS_KEY_TTL_SECONDS: String(props.accessKeyTtlSeconds),
      SLIPSTREAM_TOKEN_TTL_SECONDS: String(props.tokenTtlSeconds),
    };
    /** Groups that open or seal tokens (or companion grants) and so read the keyring. */
    const readsKeyring: readonly RouteGroup[] = ['files', 'fallback'];

    const functions = {} as Record<RouteGroup, NodeFunction>;
    for (const group of routeGroups) {
      functions[group] = new NodeFunction(this, `${pascal(group)}Function`, {
        bundleDir: bundles[group]!,
        description: `Slipstream API: ${group} routes`,
        logRetention: props.logRetention,
        environment: {
          ...baseEnvironment,
          ...(readsKeyring.includes(group) ? { SLIPSTREAM_TOKEN_SECRET_ARN: props.tokenKeys.secretArn } : {}),
        },
      });
      props.state.grantReadWrite(functions[group]);
    }
    this.functions = functions;

    const buckets = props.servedBuckets;
    // faspConnectionInfo and transfer preferences: the immutability check (Object Lock) and bucket existence.
    buckets.grant(functions.bucket, 's3:GetBucketObjectLockConfiguration', 's3:ListBucket');
    // upload_setup / download_setup: immutability check, then a sealed token.
    buckets.grant(functions.files, 's3:GetBucketObjectLockConfiguration', 's3:ListBucket');
    props.tokenKeys.grantRead(functions.files);
    // preferences: the table only.
    // objects: listing (ListBucket), HeadObject and presigned GetObject URLs signed with this role (GetObject).
    // The bucket list comes from the configuration: no s3:ListAllMyBuckets.
    buckets.grant(functions.objects, 's3:ListBucket', 's3:GetObject');
    // HTTP-fallback multipart: create/complete (PutObject), presigned part URLs signed with this role
    // (PutObject), list parts, abort; companion grants are sealed with the keyring. Continued downloads:
    // HeadObject and presigned GetObject URLs (GetObject), folder listings (ListBucket).
    buckets.grant(
      functions.fallback,
      's3:PutObject',
      's3:GetObject',
      's3:AbortMultipartUpload',
      's3:ListMultipartUploadParts',
      's3:GetBucketObjectLockConfiguration',
      's3:ListBucket',
    );
    props.tokenKeys.grantRead(functions.fallback);
    // Cancelling a transfer aborts its fallback multipart upload.
    buckets.grant(functions.transfers, 's3:AbortMultipartUpload');
    // keys: the table only.

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'Slipstream control plane',
      createDefaultStage: false,
    });
    this.stage = new apigw.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: props.throttle.rateLimit, burstLimit: props.throttle.burstLimit },
      accessLogSettings: { destination: new apigw.LogGroupLogDestination(accessLogs) },
    });

    const integrations = new Map<RouteGroup, HttpLambdaIntegration>();
    for (const route of apiRoutes) {
      let integration = integrations.get(route.group);
      if (!integration) {
        integration = new HttpLambdaIntegration(`${pascal(route.group)}Integration`, functions[route.group].function);
        integrations.set(route.group, integration);
      }
      this.httpApi.addRoutes({ path: route.path, methods: route.methods, integration });
    }
    Validations.of(this.httpApi).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'Authorization is done by the application, per route: API keys (Bearer sk_...) and short-lived access keys (Basic), ' +
        'hashed in the state table and scoped to buckets and actions, as Aspera and S3 clients expect; /health is public by design.',
    });

    // The $default stage is served at the API's root.
    this.url = this.httpApi.apiEndpoint;
  }
}

function pascal(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}
