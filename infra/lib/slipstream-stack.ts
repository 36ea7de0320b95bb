import { join } from 'node:path';
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { Api } from './api';
import { ServedBuckets } from './bucket-settings';
import { repoRoot } from './bundle';
import type { SlipstreamConfig } from './config';
import { Console } from './console';
import { Engine } from './engine';
import { Network } from './network';
import { TokenKeys } from './secrets';
import { State } from './state';

export interface SlipstreamStackProps extends StackProps {
  readonly config: SlipstreamConfig;
  /** The built console to upload; default `web/dist` (skipped when it does not exist). */
  readonly consoleAssetDir?: string;
}

/**
 * The whole service in one environment-agnostic stack: network, state table, token keyring, served
 * bucket settings, the UDP engine behind an NLB, the HTTP API and the console.
 */
export class SlipstreamStack extends Stack {
  readonly network: Network;
  readonly state: State;
  readonly tokenKeys: TokenKeys;
  readonly servedBuckets: ServedBuckets;
  readonly engine: Engine;
  readonly api: Api;
  readonly console: Console;

  constructor(scope: Construct, id: string, props: SlipstreamStackProps) {
    super(scope, id, props);
    const { config } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;

    this.network = new Network(this, 'Network', { logRetention });
    this.state = new State(this, 'State');
    this.tokenKeys = new TokenKeys(this, 'TokenKeys', { logRetention });
    this.console = new Console(this, 'Console', {
      assetDir: props.consoleAssetDir ?? join(repoRoot, 'web', 'dist'),
      logRetention,
    });
    const allowedOrigins = [this.console.url, ...config.consoleOrigins];
    this.servedBuckets = new ServedBuckets(this, 'ServedBuckets', {
      bucketNames: config.buckets,
      allowedOrigins,
      abortIncompleteMultipartAfterDays: config.abortIncompleteMultipartAfterDays,
      logRetention,
    });
    this.engine = new Engine(this, 'Engine', {
      network: this.network,
      state: this.state,
      tokenKeys: this.tokenKeys,
      servedBuckets: this.servedBuckets,
      bucketNames: config.buckets,
      enginePort: config.enginePort,
      healthPort: config.engineHealthPort,
      desiredCount: config.engineDesiredCount,
      cpu: config.engineCpu,
      memoryLimitMiB: config.engineMemoryMiB,
      cpuArchitecture: config.engineCpuArchitecture,
      tokenTtlSeconds: config.tokenTtlSeconds,
      logRetention,
    });
    this.api = new Api(this, 'Api', {
      state: this.state,
      tokenKeys: this.tokenKeys,
      servedBuckets: this.servedBuckets,
      bucketNames: config.buckets,
      engineHost: this.engine.engineHost,
      enginePort: config.enginePort,
      accessKeyTtlSeconds: config.accessKeyTtlSeconds,
      tokenTtlSeconds: config.tokenTtlSeconds,
      throttle: { rateLimit: config.apiThrottleRateLimit, burstLimit: config.apiThrottleBurstLimit },
      logRetention,
    });
    this.console.deploy({ apiUrl: this.api.url });

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'Control-plane API base URL (ATSEndpoint)' });
    new CfnOutput(this, 'EngineHost', { value: this.engine.engineHost, description: 'UDP transfer endpoint (NLB DNS name)' });
    new CfnOutput(this, 'EnginePort', { value: String(config.enginePort), description: 'UDP transfer port' });
    new CfnOutput(this, 'ConsoleUrl', { value: this.console.url, description: 'Browser console (CloudFront)' });
    new CfnOutput(this, 'TableName', { value: this.state.tableName, description: 'DynamoDB state table' });
    new CfnOutput(this, 'TokenSecretArn', { value: this.tokenKeys.secretArn, description: 'Token keyring secret (rotate by hand)' });
  }
}
