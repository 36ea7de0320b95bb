import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/ports';
import { startLoopbackStack, type LocalStack } from '../../local/stack';
import { testBytes } from '../support/s3';
import type { UploadReport, UploadSpec } from './uppy-page/protocol';

/**
 * Stock Uppy (`@uppy/core` + `@uppy/aws-s3` v6, unchanged) in a real Chromium, against the local stack's
 * Companion-compatible routes (`POST /v1/fallback/companion` → `/companion/{grant}/s3/…`): one file through
 * multipart (create, sign each part, PUT the parts straight to s3rver, complete) and one through the simple
 * path (`/s3/params` → presigned POST policy → form POST straight to s3rver). The objects are read back from
 * s3rver and compared byte for byte (sha256).
 *
 * The page's server also passes `/companion/*` through to the API, so Uppy reaches the routes from the
 * page's own origin (as from a console served by the API's host) — the bytes still go cross-origin to S3
 * under the bucket's CORS. The last test calls the API from another origin, as a console on CloudFront
 * does, which needs the API's CORS answers.
 *
 * Needs Debian's `chromium` at /usr/bin/chromium: skipped without it, except in CI (CI=true), where its
 * absence fails the run.
 */
const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // Without these three, Chromium's connections are refused on some machines.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const haveChromium = existsSync(chromiumPath);
if (!haveChromium) {
  if (process.env.CI === 'true') {
    throw new Error(`${chromiumPath} is required in CI for the Uppy browser test (apt-get install chromium)`);
  }
  console.warn(`${chromiumPath} is not installed: skipping the Uppy browser test (apt-get install chromium)`);
}

const MiB = 1024 * 1024;
const bucket = 'local';
const keyPrefix = 'uppy/';
const multipartFile: UploadSpec = { name: 'big.bin', size: 12 * MiB + 123, seed: 0x1234abcd, type: 'application/octet-stream' };
const simpleFile: UploadSpec = { name: 'small.bin', size: 100 * 1024, seed: 0x5eed, type: 'application/octet-stream' };

const pageDir = fileURLToPath(new URL('./uppy-page/', import.meta.url));
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface Seen {
  requests: string[];
  failedRequests: string[];
  consoleErrors: string[];
  pageErrors: string[];
}

/** The grant token is a bearer credential and long: logs show `/companion/…/s3/…`. */
const redact = (text: string) => text.replace(/(\/|%2F)companion(\/|%2F)[^/%\s'"]+/gi, '$1companion$2…');

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe.skipIf(!haveChromium)('Uppy @uppy/aws-s3 in Chromium against the Companion routes', () => {
  let dataDir: string | undefined;
  let stack: LocalStack | undefined;
  let pageServer: Server | undefined;
  let pageOrigin: string;
  let browser: Browser | undefined;
  let grantPath: string;
  let s3: S3Client;
  let seen: Seen;
  let report: UploadReport;

  const auth = () => ({ authorization: `Bearer ${stack!.credentials.apiKey}` });

  async function openPage(companionEndpoint: string): Promise<{ page: Page; seen: Seen }> {
    const log: Seen = { requests: [], failedRequests: [], consoleErrors: [], pageErrors: [] };
    const page = await browser!.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') log.consoleErrors.push(redact(`${msg.text()} (at ${msg.location().url.replace(/\?.*/, '')})`));
    });
    page.on('pageerror', (error) => log.pageErrors.push(redact(error.message)));
    page.on('request', (req) => log.requests.push(redact(`${req.method()} ${req.url()}`)));
    page.on('requestfailed', (req) => log.failedRequests.push(redact(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`)));
    await page.goto(`${pageOrigin}/?${new URLSearchParams({ companion: companionEndpoint })}`);
    await page.waitForFunction(() => typeof window.runUpload === 'function');
    return { page, seen: log };
  }

  const upload = (page: Page, specs: UploadSpec[]) => page.evaluate((s) => window.runUpload!(s), specs);

  async function storedSha256(key: string): Promise<{ size: number; sha256: string }> {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const stored = await object.Body!.transformToByteArray();
    return { size: stored.length, sha256: sha256(stored) };
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'slipstream-uppy-'));

    // The page: stock Uppy bundled for the browser.
    const bundle = await build({
      entryPoints: [join(pageDir, 'main.ts')],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'chrome120',
      write: false,
      logLevel: 'silent',
    });
    const files: Record<string, { type: string; body: string | Uint8Array }> = {
      '/': { type: 'text/html; charset=utf-8', body: readFileSync(join(pageDir, 'index.html'), 'utf8') },
      '/main.js': { type: 'text/javascript; charset=utf-8', body: bundle.outputFiles[0]!.contents },
    };
    const pagePort = await freePort();
    pageOrigin = `http://127.0.0.1:${pagePort}`;
    pageServer = createServer((req, res) => {
      const path = new URL(req.url ?? '/', pageOrigin).pathname;
      if (path.startsWith('/companion/')) {
        // Passed through to the API unchanged (method, path, query, content type, body).
        void (async () => {
          const body = await readBody(req);
          const contentType = req.headers['content-type'];
          const upstream = await fetch(`${stack!.apiUrl}${req.url}`, {
            method: req.method ?? 'GET',
            headers: contentType ? { 'content-type': contentType } : {},
            ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body: new Uint8Array(body) }),
          });
          res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' });
          res.end(Buffer.from(await upstream.arrayBuffer()));
        })().catch((error: unknown) => {
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(String(error));
        });
        return;
      }
      const file = files[path];
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
    });
    await new Promise<void>((ready, fail) => {
      pageServer!.once('error', fail);
      pageServer!.listen(pagePort, '127.0.0.1', () => ready());
    });

    stack = await startLoopbackStack(dataDir, { bucket, corsOrigins: [pageOrigin] });
    s3 = new S3Client({
      endpoint: stack.s3Endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });

    const minted = await fetch(`${stack.apiUrl}/v1/fallback/companion`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ bucket, keyPrefix }),
    });
    const mintedText = await minted.text();
    expect(minted.status, mintedText).toBe(201);
    const { companionUrl } = JSON.parse(mintedText) as { companionUrl: string };
    expect(companionUrl.startsWith(`${stack.apiUrl}/companion/`), companionUrl).toBe(true);
    grantPath = companionUrl.slice(stack.apiUrl.length);

    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
    const opened = await openPage(`${pageOrigin}${grantPath}`);
    seen = opened.seen;
    report = await upload(opened.page, [multipartFile, simpleFile]);
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await new Promise<void>((done) => (pageServer ? pageServer.close(() => done()) : done()));
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const diagnostics = () => JSON.stringify({ report, ...seen }, null, 2);

  it('uploads both files without an error', () => {
    expect(report.errors, diagnostics()).toEqual([]);
    expect(report.failed, diagnostics()).toEqual([]);
    expect(report.successful.map((f) => f.name).sort()).toEqual([multipartFile.name, simpleFile.name].sort());
  });

  it('sends the big file through multipart: create, 3 signed parts PUT to S3, complete', () => {
    expect(report.partsUploaded[multipartFile.name], diagnostics()).toEqual([1, 2, 3]);
    const companion = (method: string, path: RegExp) =>
      seen.requests.filter((r) => r.startsWith(`${method} ${pageOrigin}/companion/…/s3/`) && path.test(r.slice(r.indexOf('/s3/'))));
    expect(companion('POST', /^\/s3\/multipart$/)).toHaveLength(1);
    expect(companion('GET', /^\/s3\/multipart\/[^/]+\/[123]\?key=uppy%2Fbig\.bin$/)).toHaveLength(3);
    expect(companion('POST', /^\/s3\/multipart\/[^/]+\/complete\?key=uppy%2Fbig\.bin$/)).toHaveLength(1);
    const partPuts = seen.requests.filter((r) => r.startsWith(`PUT ${stack!.s3Endpoint}/${bucket}/${keyPrefix}${multipartFile.name}?`));
    expect(partPuts, diagnostics()).toHaveLength(3);
    const uploaded = report.successful.find((f) => f.name === multipartFile.name);
    expect(uploaded?.key).toBe(`${keyPrefix}${multipartFile.name}`);
  });

  it('sends the small file through the simple path: /s3/params, then a form POST to S3', () => {
    expect(report.partsUploaded[simpleFile.name]).toBeUndefined();
    expect(seen.requests.filter((r) => r.startsWith(`GET ${pageOrigin}/companion/…/s3/params?filename=small.bin&`))).toHaveLength(1);
    expect(seen.requests.filter((r) => r === `POST ${stack!.s3Endpoint}/${bucket}`), diagnostics()).toHaveLength(1);
    const uploaded = report.successful.find((f) => f.name === simpleFile.name);
    expect(uploaded?.key).toBe(`${keyPrefix}${simpleFile.name}`);
    expect(uploaded?.location).toBe(`${stack!.s3Endpoint}/${bucket}/${keyPrefix}${simpleFile.name}`);
  });

  it('stores exactly the bytes the browser had', async () => {
    for (const spec of [multipartFile, simpleFile]) {
      const expected = sha256(testBytes(spec.size, spec.seed));
      expect(report.successful.find((f) => f.name === spec.name)?.sha256, `${spec.name} in the browser`).toBe(expected);
      expect(await storedSha256(`${keyPrefix}${spec.name}`), `${spec.name} in s3rver`).toEqual({ size: spec.size, sha256: expected });
    }
  });

  it('records the multipart upload as a completed transfer', async () => {
    const res = await fetch(`${stack!.apiUrl}/v1/transfers?state=completed`, { headers: auth() });
    expect(res.status).toBe(200);
    const { transfers } = (await res.json()) as { transfers: { key?: string; status: string }[] };
    const transfer = transfers.find((t) => t.key === `${keyPrefix}${multipartFile.name}`);
    expect(transfer, JSON.stringify(transfers)).toMatchObject({ bucket, status: 'COMPLETED', transport: 'http', direction: 'upload' });
  });

  it('logs no browser errors', () => {
    expect(seen.pageErrors).toEqual([]);
    expect(seen.consoleErrors).toEqual([]);
    expect(seen.failedRequests).toEqual([]);
  });

  it('uploads from a page on another origin than the API (the API answers CORS)', async () => {
    const { page, seen: crossSeen } = await openPage(`${stack!.apiUrl}${grantPath}`);
    const specs: UploadSpec[] = [
      { ...multipartFile, name: 'cross-origin-big.bin', size: 6 * MiB },
      { ...simpleFile, name: 'cross-origin-small.bin' },
    ];
    const crossReport = await upload(page, specs);
    await page.close();
    expect(crossReport.failed, JSON.stringify({ crossReport, ...crossSeen }, null, 2)).toEqual([]);
    for (const spec of specs) {
      expect(await storedSha256(`${keyPrefix}${spec.name}`)).toEqual({ size: spec.size, sha256: sha256(testBytes(spec.size, spec.seed)) });
    }
  });
});
