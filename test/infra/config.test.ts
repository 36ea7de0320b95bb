import { describe, expect, it } from 'vitest';
import { ConfigError, configFromContext, parseConfig } from '../../infra/lib/config';
import { cdkJsonContext } from './synth';

function problem(raw: Record<string, unknown>): string {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('config was accepted');
}

describe('infra config', () => {
  it('fills in defaults', () => {
    expect(parseConfig({ buckets: ['slipstream-demo-uploads'] })).toEqual({
      buckets: ['slipstream-demo-uploads'],
      consoleOrigins: [],
      abortIncompleteMultipartAfterDays: 3,
      enginePort: 33001,
      engineHealthPort: 8081,
      engineDesiredCount: 2,
      engineCpu: 1024,
      engineMemoryMiB: 2048,
      engineCpuArchitecture: 'x86_64',
      accessKeyTtlSeconds: 3600,
      tokenTtlSeconds: 86400,
      logRetentionDays: 90,
      apiThrottleRateLimit: 100,
      apiThrottleBurstLimit: 200,
    });
  });

  it('accepts the example in cdk.json, ignoring the feature flags next to it', () => {
    const context = cdkJsonContext();
    const config = configFromContext((key) => context[key]);
    expect(config.buckets).toEqual(['slipstream-demo-uploads']);
  });

  it('takes -c values, which arrive as strings', () => {
    const config = parseConfig({
      buckets: '["a-bucket","b.bucket"]',
      consoleOrigins: 'https://a.example.com, https://b.example.com:8443',
      abortIncompleteMultipartAfterDays: '7',
      engineDesiredCount: '3',
    });
    expect(config.buckets).toEqual(['a-bucket', 'b.bucket']);
    expect(config.consoleOrigins).toEqual(['https://a.example.com', 'https://b.example.com:8443']);
    expect(config.abortIncompleteMultipartAfterDays).toBe(7);
    expect(config.engineDesiredCount).toBe(3);
    expect(parseConfig({ buckets: 'a-bucket,b-bucket' }).buckets).toEqual(['a-bucket', 'b-bucket']);
  });

  it('requires at least one bucket', () => {
    expect(problem({})).toMatch(/^invalid Slipstream CDK config[\s\S]*\n  buckets: /);
    expect(problem({ buckets: [] })).toMatch(/buckets: list at least one S3 bucket/);
  });

  it('names the bad bucket and why', () => {
    const message = problem({ buckets: ['good-bucket', 'Bad_Bucket'] });
    expect(message).toContain('buckets[1]');
    expect(message).toContain('"Bad_Bucket"');
    expect(message).toMatch(/lowercase/);
    expect(problem({ buckets: ['192.168.1.1'] })).toMatch(/buckets\[0\]: .*IP address/);
    expect(problem({ buckets: ['ab'] })).toMatch(/buckets\[0\]: .*3 to 63/);
    expect(problem({ buckets: ['same-bucket', 'same-bucket'] })).toMatch(/buckets: list each bucket once/);
  });

  it('accepts only https origins without a path', () => {
    expect(problem({ buckets: ['b-bucket'], consoleOrigins: ['http://console.example.com'] })).toMatch(/consoleOrigins\[0\]: .*not an https origin/);
    expect(problem({ buckets: ['b-bucket'], consoleOrigins: ['https://console.example.com/'] })).toMatch(/consoleOrigins\[0\]/);
    expect(problem({ buckets: ['b-bucket'], consoleOrigins: ['https://console.example.com/app'] })).toMatch(/consoleOrigins\[0\]/);
    expect(problem({ buckets: ['b-bucket'], consoleOrigins: '[not json' })).toMatch(/consoleOrigins/);
  });

  it('bounds the multipart abort days to 1..30 whole days', () => {
    for (const days of [0, 31, 2.5, 'soon']) {
      expect(problem({ buckets: ['b-bucket'], abortIncompleteMultipartAfterDays: days })).toMatch(/abortIncompleteMultipartAfterDays: /);
    }
  });

  it('checks ports and the Fargate task size', () => {
    expect(problem({ buckets: ['b-bucket'], enginePort: 70000 })).toMatch(/enginePort: /);
    expect(problem({ buckets: ['b-bucket'], engineHealthPort: 33001 })).toMatch(/engineHealthPort: must differ from enginePort/);
    expect(problem({ buckets: ['b-bucket'], engineCpu: 1000 })).toMatch(/engineCpu: must be a Fargate CPU value/);
    expect(problem({ buckets: ['b-bucket'], engineCpu: 256, engineMemoryMiB: 4096 })).toMatch(/engineMemoryMiB: with engineCpu 256, must be 512\.\.2048/);
    expect(problem({ buckets: ['b-bucket'], engineDesiredCount: 0 })).toMatch(/engineDesiredCount: /);
    expect(problem({ buckets: ['b-bucket'], engineCpuArchitecture: 'sparc' })).toMatch(/engineCpuArchitecture: /);
    expect(problem({ buckets: ['b-bucket'], logRetentionDays: 10 })).toMatch(/logRetentionDays: must be one of/);
  });

  it('lists every problem at once', () => {
    const message = problem({ buckets: ['UPPER'], abortIncompleteMultipartAfterDays: 99, enginePort: -1 });
    expect(message).toContain('buckets[0]');
    expect(message).toContain('abortIncompleteMultipartAfterDays');
    expect(message).toContain('enginePort');
  });
});
