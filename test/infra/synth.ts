import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { repoRoot } from '../../infra/lib/bundle';
import { parseConfig, type SlipstreamConfigInput } from '../../infra/lib/config';
import { SlipstreamStack } from '../../infra/lib/slipstream-stack';

/** cdk.json's context: the feature flags and example config `cdk synth` uses. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(repoRoot, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  return cdkJson.context;
}

export const testBuckets = ['slipstream-test-uploads', 'slipstream-test-archive'];
export const testConsoleOrigins = ['https://console.example.com'];

export interface TestStack {
  app: App;
  stack: SlipstreamStack;
  /** Removes the synth output directory. */
  cleanup(): void;
}

/**
 * The stack as `cdk synth` builds it (cdk.json's feature flags), offline: an env-agnostic stack, Lambda
 * code bundled with the local esbuild, the engine image only staged. Config may be overridden.
 */
export function buildTestStack(options: { config?: Partial<SlipstreamConfigInput>; consoleAssetDir?: string } = {}): TestStack {
  const context = { ...cdkJsonContext(), buckets: testBuckets, consoleOrigins: testConsoleOrigins, ...options.config };
  const outdir = mkdtempSync(join(tmpdir(), 'slipstream-cdk-test-'));
  const app = new App({ context, outdir });
  const stack = new SlipstreamStack(app, 'SlipstreamTest', {
    config: parseConfig(context),
    // Never the real web/dist: tests decide whether a built console exists.
    consoleAssetDir: options.consoleAssetDir ?? join(outdir, 'no-console-build'),
  });
  return { app, stack, cleanup: () => rmSync(outdir, { recursive: true, force: true }) };
}
