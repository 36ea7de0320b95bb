/**
 * `npm run build:lambda`: bundles the Lambda entries exactly as `cdk synth` does (local esbuild, no Docker)
 * and prints where each bundle went. Useful to inspect bundle contents and sizes; synth does this by itself.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lambdaEntries } from './lib/api';
import { bundleLambdas } from './lib/bundle';

const started = Date.now();
const bundles = bundleLambdas({
  ...lambdaEntries,
  tokenKeyring: 'infra/lambda/token-keyring.ts',
  bucketSettings: 'infra/lambda/bucket-settings.ts',
});
for (const [name, dir] of Object.entries(bundles)) {
  const bytes = readdirSync(dir).reduce((sum, file) => sum + statSync(join(dir, file)).size, 0);
  console.log(`${name.padEnd(16)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB  ${dir}`);
}
console.log(`bundled in ${Date.now() - started} ms`);
