import { createRequire } from 'node:module';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * s3rver, plus the two multipart operations it lacks and our fallback path needs: ListParts (to resume
 * and to check parts before completing) and AbortMultipartUpload. Both read s3rver's own upload folders
 * (`<bucket>/…uploads/<uploadId>/<partNumber>` and `.md5`), behind its signature check. Run as a child
 * process by `services.ts`: `node --import tsx local/s3rver-server.ts -d DIR -a HOST -p PORT`.
 */
const require = createRequire(import.meta.url);

interface KoaContext {
  method: string;
  query: Record<string, string | undefined>;
  params: { bucket: string; key: string };
  status: number;
  body: unknown;
  store: { getResourcePath(bucket: string, key: undefined, resource: string): string };
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface RouterLayer {
  path: string;
  methods: string[];
}
interface Router {
  use(path: string, middleware: Middleware): Router;
  stack: RouterLayer[];
}
type S3ErrorClass = new (code: string, message: string, detail?: Record<string, string>) => Error;
interface S3rverInstance {
  run(): Promise<{ port: number; address: string }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const router = require('s3rver/lib/routes.js') as Router;
const S3Error = require('s3rver/lib/models/error.js') as S3ErrorClass;
const S3rver = require('s3rver') as S3rverClass;

const uploadIdPattern = /^[0-9a-f]{32}$/;
const maxPartsPerPage = 1000;

async function uploadDir(ctx: KoaContext, uploadId: string | undefined): Promise<string> {
  const noSuchUpload = () =>
    new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: String(uploadId) });
  if (!uploadId || !uploadIdPattern.test(uploadId)) throw noSuchUpload();
  const dir = join(ctx.store.getResourcePath(ctx.params.bucket, undefined, 'uploads'), uploadId);
  const key = await readFile(join(dir, 'key'), 'utf8').catch(() => undefined);
  if (key !== ctx.params.key) throw noSuchUpload();
  return dir;
}

async function listParts(ctx: KoaContext, dir: string, uploadId: string): Promise<void> {
  const marker = Number(ctx.query['part-number-marker'] ?? 0);
  const maxParts = Math.min(Number(ctx.query['max-parts'] ?? maxPartsPerPage), maxPartsPerPage);
  const numbers = (await readdir(dir))
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((n) => n > marker)
    .sort((a, b) => a - b);
  const page = numbers.slice(0, maxParts);
  const parts = await Promise.all(
    page.map(async (n) => {
      const [info, md5] = await Promise.all([stat(join(dir, String(n))), readFile(join(dir, `${n}.md5`), 'utf8')]);
      return { PartNumber: n, LastModified: info.mtime.toISOString(), ETag: `"${md5.trim()}"`, Size: info.size };
    }),
  );
  ctx.body = {
    ListPartsResult: {
      Bucket: ctx.params.bucket,
      Key: ctx.params.key,
      UploadId: uploadId,
      PartNumberMarker: marker,
      NextPartNumberMarker: page.length > 0 ? page[page.length - 1] : marker,
      MaxParts: maxParts,
      IsTruncated: numbers.length > page.length,
      ...(parts.length > 0 ? { Part: parts } : {}),
    },
  };
}

const multipartExtras: Middleware = async (ctx, next) => {
  const uploadId = ctx.query.uploadId;
  if (uploadId === undefined || (ctx.method !== 'GET' && ctx.method !== 'DELETE')) return next();
  const dir = await uploadDir(ctx, uploadId);
  if (ctx.method === 'GET') return listParts(ctx, dir, uploadId);
  await rm(dir, { recursive: true, force: true });
  ctx.status = 204;
  ctx.body = '';
};

/** Runs after s3rver's CORS, website and signature layers, before its object routes. */
function installMultipartExtras(): void {
  router.use('/:bucket/:key+', multipartExtras);
  const layer = router.stack.pop()!;
  const objectRoutes = router.stack.findIndex((l) => l.path === '/:bucket/:key+');
  router.stack.splice(objectRoutes, 0, layer);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { directory: { type: 'string', short: 'd' }, address: { type: 'string', short: 'a' }, port: { type: 'string', short: 'p' } },
  });
  if (!values.directory || !values.address || !values.port) throw new Error('usage: s3rver-server -d DIR -a HOST -p PORT');
  installMultipartExtras();
  const server = new S3rver({ directory: values.directory, address: values.address, port: Number(values.port), silent: true, vhostBuckets: false });
  await server.run();
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
