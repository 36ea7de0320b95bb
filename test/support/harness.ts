import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import type { Config } from '../../core/config';
import { ensureStateTable } from '../../core/state/table';
import { createApp } from '../../functions/app';
import { createDeps, type AppDeps } from '../../functions/deps';
import { allRoutes } from '../../functions/routes';
import type { S3Target } from './global-setup';

export function testKeyringJson(): string {
  return JSON.stringify({ currentKeyId: 'k1', keys: { k1: randomBytes(32).toString('base64') } });
}

export function testConfig(target: S3Target, overrides: Partial<Config> = {}): Config {
  return {
    tableName: `t-${randomBytes(6).toString('hex')}`,
    region: 'us-east-1',
    buckets: '*',
    s3Endpoint: target.endpoint,
    s3ForcePathStyle: true,
    dynamoDbEndpoint: inject('dynamoDbEndpoint'),
    publicUrl: 'http://api.test',
    engineHost: '127.0.0.1',
    enginePort: 33_001,
    accessKeyTtlSeconds: 3600,
    tokenTtlSeconds: 3600,
    tokenKeys: { source: 'inline', json: testKeyringJson() },
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    ...overrides,
  };
}

export interface TestApi {
  deps: AppDeps;
  app: ReturnType<typeof createApp>;
  adminKey: string;
  /** `app.request()` with the admin key unless `key` says otherwise (`null`: no credentials). */
  call(path: string, init?: RequestInit & { key?: string | null; json?: unknown }): Promise<Response>;
  keyWith(buckets: string[], actions: ('read' | 'write' | 'admin')[]): Promise<string>;
}

/** The API on real s3rver/RGW and dynalite, in a table of its own so test files never share state. */
export async function createTestApi(target: S3Target = inject('s3rver'), overrides: Partial<Config> = {}): Promise<TestApi> {
  const config = testConfig(target, overrides);
  await ensureStateTable(
    new DynamoDBClient({ region: 'us-east-1', endpoint: config.dynamoDbEndpoint, credentials: { accessKeyId: 'l', secretAccessKey: 'l' } }),
    config.tableName,
  );
  const deps = createDeps(config);
  const app = createApp(deps, allRoutes);
  const admin = await deps.keys.createApiKey({ name: 'test admin', buckets: ['*'], actions: ['read', 'write', 'admin'], now: new Date() });
  const api: TestApi = {
    deps,
    app,
    adminKey: admin.secret,
    call(path, init = {}) {
      const { key = admin.secret, json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (key !== null && !headers.has('authorization')) headers.set('authorization', `Bearer ${key}`);
      if (json !== undefined) headers.set('content-type', 'application/json');
      return Promise.resolve(
        app.request(path, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) }),
      );
    },
    async keyWith(buckets, actions) {
      return (await deps.keys.createApiKey({ name: 'scoped', buckets, actions, now: new Date() })).secret;
    },
  };
  return api;
}

export function basicAuth(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}
