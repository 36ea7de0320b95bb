import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { createS3Client } from '../core/clients';
import { configToEnv, type Config } from '../core/config';
import { ensureStateTable } from '../core/state/table';
import { createApp } from '../functions/app';
import { createDeps } from '../functions/deps';
import { allRoutes } from '../functions/routes';
import { ensureAdminKey, ensureBucket, loadOrCreateKeyring, type CredentialsFile } from './bootstrap';
import { defaultAgentUrl, defaultConsoleDir, loadConsole } from './console';
import { assertPortFree, assertUdpPortFree, freePort } from './ports';
import { s3rverCredentials, startDynalite, startEngine, startS3rver, type ManagedService } from './services';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface LocalStackOptions {
  /** Where the services listen (`127.0.0.1`; `0.0.0.0` to serve other machines or namespaces). */
  listenHost: string;
  /** The host clients are told to use, in connection info, specs and presigned URLs. */
  publicHost: string;
  apiPort: number;
  s3Port: number;
  dynamoDbPort: number;
  enginePort: number;
  engineHealthPort: number;
  dataDir: string;
  bucket: string;
  /** Extra browser origins allowed by the bucket's CORS, besides the API's own. */
  corsOrigins?: readonly string[];
  /** The API's public base URL when it differs from `http://publicHost:apiPort` (behind a reverse proxy, maybe with a path). */
  publicUrl?: string;
  /** Build the public base URL from a reverse proxy's X-Forwarded-* headers (core/config.ts trustProxy). */
  trustProxy?: boolean;
  /** The built console served at `/` (default `web/dist`). */
  consoleDir?: string;
  /** Where the console looks for the local agent (default http://127.0.0.1:55002). */
  agentUrl?: string;
}

export interface LocalStack {
  readonly apiUrl: string;
  readonly s3Endpoint: string;
  readonly dynamoDbEndpoint: string;
  readonly credentials: CredentialsFile;
  readonly credentialsPath: string;
  readonly adminKeyCreated: boolean;
  readonly config: Config;
  /** The console's built files were found and are served at `/`. */
  readonly consoleBuilt: boolean;
  /** The engine's process (tests kill it to prove a resume). */
  readonly engine: () => ManagedService;
  /** Starts a fresh engine process on the same ports and state, after the old one died or was stopped. */
  restartEngine(): Promise<void>;
  stop(): Promise<void>;
}

const portHint = (flag: string, env: string) => `Choose another port with ${flag} <port> or ${env}=<port>, or stop what is using it.`;

/** The whole system on one machine with real services on loopback; data kept under `dataDir`. */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const host = options.listenHost;
  await assertPortFree(host, options.apiPort, 'API', portHint('--port', 'SLIPSTREAM_PORT'));
  await assertPortFree(host, options.s3Port, 'S3 (s3rver)', portHint('--s3-port', 'SLIPSTREAM_S3_PORT'));
  await assertPortFree(host, options.dynamoDbPort, 'DynamoDB (dynalite)', portHint('--dynamodb-port', 'SLIPSTREAM_DYNAMODB_PORT'));
  await assertUdpPortFree(host, options.enginePort, 'engine (UDP)', portHint('--engine-port', 'SLIPSTREAM_ENGINE_PORT'));
  await assertPortFree(host, options.engineHealthPort, 'engine health', portHint('--engine-health-port', 'SLIPSTREAM_ENGINE_HEALTH_PORT'));

  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const services: ManagedService[] = [];
  let server: ServerType | undefined;
  const stop = async () => {
    if (server) await new Promise<void>((done) => server!.close(() => done()));
    server = undefined;
    await Promise.all(services.splice(0).map((s) => s.stop()));
  };
  try {
    const [s3rver, dynalite] = await Promise.all([
      startS3rver({ host, port: options.s3Port, directory: join(dataDir, 's3'), logFile: join(dataDir, 's3rver.log') }),
      startDynalite({ host, port: options.dynamoDbPort, directory: join(dataDir, 'dynamodb'), logFile: join(dataDir, 'dynalite.log') }),
    ]);
    services.push(s3rver, dynalite);

    const apiUrl = `http://${options.publicHost}:${options.apiPort}`;
    const config: Config = {
      tableName: 'slipstream',
      region: 'us-east-1',
      buckets: '*',
      s3Endpoint: s3rver.endpoint,
      s3PublicEndpoint: `http://${options.publicHost}:${options.s3Port}`,
      s3ForcePathStyle: true,
      dynamoDbEndpoint: dynalite.endpoint,
      publicUrl: options.publicUrl ?? apiUrl,
      ...(options.trustProxy ? { trustProxy: true } : {}),
      engineHost: options.publicHost,
      enginePort: options.enginePort,
      accessKeyTtlSeconds: 3600,
      tokenTtlSeconds: 86_400,
      tokenKeys: { source: 'inline', json: loadOrCreateKeyring(join(dataDir, 'token-keys.json')) },
      credentials: s3rverCredentials,
    };
    await ensureStateTable(
      new DynamoDBClient({ region: config.region, endpoint: dynalite.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
      config.tableName,
    );
    const consoleOrigins = [...new Set([apiUrl, `http://localhost:${options.apiPort}`, `http://127.0.0.1:${options.apiPort}`, ...(options.corsOrigins ?? [])])];
    await ensureBucket(createS3Client(config), options.bucket, consoleOrigins);

    const launchEngine = () =>
      startEngine({
        host,
        port: options.enginePort,
        healthPort: options.engineHealthPort,
        env: { ...process.env, ...configToEnv(config) },
        logFile: join(dataDir, 'engine.log'),
      });
    let engine = await launchEngine();
    services.push(engine);

    const deps = createDeps(config);
    const credentialsPath = join(dataDir, 'credentials.json');
    const { credentials, created } = await ensureAdminKey(deps.keys, credentialsPath, {
      apiUrl,
      bucket: options.bucket,
      s3Endpoint: config.s3PublicEndpoint!,
      region: config.region,
    });

    const app = createApp(deps, allRoutes);
    const site = loadConsole(options.consoleDir ?? defaultConsoleDir, { agentUrl: options.agentUrl ?? defaultAgentUrl });
    // The console's paths first (none can be an API path), then the API.
    const fetch = (request: Request) => site.respond(request) ?? app.fetch(request);
    await new Promise<void>((ready, fail) => {
      server = serve({ fetch, hostname: host, port: options.apiPort }, () => ready());
      server.once('error', fail);
    });
    const bound = (server!.address() as AddressInfo).port;
    return {
      apiUrl: `http://${options.publicHost}:${bound}`,
      s3Endpoint: config.s3PublicEndpoint!,
      dynamoDbEndpoint: dynalite.endpoint,
      credentials,
      credentialsPath,
      adminKeyCreated: created,
      config,
      consoleBuilt: site.built,
      engine: () => engine,
      async restartEngine() {
        await engine.stop();
        services.splice(services.indexOf(engine), 1);
        engine = await launchEngine();
        services.push(engine);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A stack on loopback with every port free-picked (tests, benchmarks): only the data folder is chosen. */
export async function startLoopbackStack(dataDir: string, overrides: Partial<LocalStackOptions> = {}): Promise<LocalStack> {
  return startLocalStack({
    listenHost: '127.0.0.1',
    publicHost: '127.0.0.1',
    apiPort: await freePort(),
    s3Port: await freePort(),
    dynamoDbPort: await freePort(),
    enginePort: await freePort(),
    engineHealthPort: await freePort(),
    dataDir,
    bucket: 'local',
    ...overrides,
  });
}
