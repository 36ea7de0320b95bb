/**
 * `npm run build:lambda`: bundles the Lambda entries exactly as `cdk synth` does (local esbuild, no Docker)
 * and prints where each bundle went. Useful to inspect bundle contents and sizes; synth does this by itself.
 */
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lambdaEntries } from './lib/api';
import { bundleLambdas } from './lib/bundle';

const started = Date.now();
const bundles = bundleLambdas({
  ...lambdaEntries,
  tokenKeyring: 'infra/lambda/token-keyring.ts',
  bucketSettings: 'infra/lambda/bucket-settings.ts',
});
const kib = (bytes: number) => `${(bytes / 1024).toFixed(0).padStart(6)} KiB`;
console.log(`${'function'.padEnd(16)} ${'code'.padStart(10)} ${'gzipped'.padStart(10)}  (source maps beside the code are not counted)`);
for (const [name, dir] of Object.entries(bundles)) {
  const code = readFileSync(join(dir, 'index.mjs'));
  console.log(`${name.padEnd(16)} ${kib(code.length)} ${kib(gzipSync(code).length)}  ${dir}`);
}
console.log(`bundled in ${Date.now() - started} ms`);
