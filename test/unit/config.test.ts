import { describe, expect, it } from 'vitest';
import { configFromEnv, servesBucket } from '../../core/config';

const keys = JSON.stringify({ currentKeyId: 'k1', keys: { k1: Buffer.alloc(32).toString('base64') } });

describe('configuration from the environment', () => {
  it('reads a deployment configuration', () => {
    const config = configFromEnv({ SLIPSTREAM_TABLE_NAME: 'tbl', SLIPSTREAM_BUCKETS: 'one-bucket, two-bucket', SLIPSTREAM_TOKEN_SECRET_ARN: 'arn:aws:secretsmanager:x', SLIPSTREAM_ENGINE_HOST: 'nlb.example.com' });
    expect(config).toMatchObject({ tableName: 'tbl', buckets: ['one-bucket', 'two-bucket'], engineHost: 'nlb.example.com', enginePort: 33001, tokenKeys: { source: 'secrets-manager' } });
    expect(servesBucket(config, 'two-bucket')).toBe(true);
    expect(servesBucket(config, 'three-bucket')).toBe(false);
  });

  it('names each bad variable', () => {
    expect(() => configFromEnv({ SLIPSTREAM_TOKEN_KEYS: keys, SLIPSTREAM_BUCKETS: 'Bad_Name', SLIPSTREAM_ENGINE_PORT: '70000' })).toThrow(/buckets\.0: bucket name.*enginePort/s);
    // Route groups that never touch tokens run without keys (least privilege).
    expect(configFromEnv({}).tokenKeys).toBeUndefined();
  });
});
