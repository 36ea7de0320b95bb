import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

/** The repository root (this file is `infra/lib/bundle.ts`). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** What Lambda runs: the bundles target this Node line, ESM, with `index.handler` as the handler. */
export const lambdaNodeTarget = 'node22';

/** ESM bundles still meet CommonJS dependencies that call `require`; give them one. */
const requireBanner = "import { createRequire as __slipstreamCreateRequire } from 'node:module'; const require = __slipstreamCreateRequire(import.meta.url);";

const cache = new Map<string, string>();

/**
 * Bundles Lambda entry files with the locally installed esbuild (no Docker, no network) and returns,
 * per name, a directory holding `index.mjs` (+ source map) for `lambda.Code.fromAsset`.
 *
 * Output directories are content-addressed (`<tmp>/slipstream-lambda-bundles/<name>-<hash>`) and written
 * by rename, so parallel synths (test files in several processes) never see a half-written bundle, and an
 * unchanged bundle keeps its asset hash. All entries go through one esbuild call, and results are cached
 * for the process, so several synths in one test file bundle once.
 *
 * @param entries name → entry file (relative to the repository root or absolute)
 */
export function bundleLambdas(entries: Readonly<Record<string, string>>): Record<string, string> {
  const missing = Object.keys(entries).filter((name) => !cache.has(cacheKey(name, entries[name]!)));
  if (missing.length > 0) {
    const result = buildSync({
      entryPoints: Object.fromEntries(missing.map((name) => [`${name}/index`, resolve(repoRoot, entries[name]!)])),
      absWorkingDir: repoRoot,
      outdir: '/virtual',
      outExtension: { '.js': '.mjs' },
      write: false,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: lambdaNodeTarget,
      // The AWS SDK is bundled too, so the code runs against the SDK version it was tested with.
      minify: true,
      keepNames: true,
      sourcemap: 'linked',
      sourcesContent: false,
      legalComments: 'none',
      banner: { js: requireBanner },
      logLevel: 'silent',
    });
    const base = join(tmpdir(), 'slipstream-lambda-bundles');
    mkdirSync(base, { recursive: true });
    for (const name of missing) {
      const files = result.outputFiles.filter((f) => f.path.startsWith(`/virtual/${name}/`));
      const hash = createHash('sha256');
      for (const f of files) hash.update(f.path).update(f.contents);
      const dir = join(base, `${name}-${hash.digest('hex').slice(0, 20)}`);
      if (existsSync(dir)) {
        const now = new Date();
        utimesSync(dir, now, now);
      } else {
        const staging = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
        mkdirSync(staging, { recursive: true });
        for (const f of files) writeFileSync(join(staging, basename(f.path)), f.contents);
        try {
          renameSync(staging, dir);
        } catch (error) {
          // Another process finished the same bundle first: it has the same content.
          rmSync(staging, { recursive: true, force: true });
          if (!existsSync(dir)) throw error;
        }
      }
      cache.set(cacheKey(name, entries[name]!), dir);
      pruneOldBundles(base, name, dir);
    }
  }
  return Object.fromEntries(Object.keys(entries).map((name) => [name, cache.get(cacheKey(name, entries[name]!))!]));
}

/** Bundles of earlier code versions are dropped a day after their last use. */
function pruneOldBundles(base: string, name: string, keep: string): void {
  const dayAgo = Date.now() - 86_400_000;
  for (const entry of readdirSync(base)) {
    const path = join(base, entry);
    if (path === keep || !entry.startsWith(`${name}-`)) continue;
    try {
      if (statSync(path).mtimeMs < dayAgo) rmSync(path, { recursive: true, force: true });
    } catch {
      // already gone
    }
  }
}

function cacheKey(name: string, entry: string): string {
  return `${name}\0${resolve(repoRoot, entry)}`;
}
