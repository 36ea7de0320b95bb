import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListPartsCommand, type S3Client } from '@aws-sdk/client-s3';
import { chromium, type Browser, type Page, type Request as PwRequest, type Route } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenAgent, newPairingToken, type RunningAgent } from '../../client/agent/server';
import { Shares } from '../../client/agent/shares';
import { AgentTransfers } from '../../client/agent/transfers';
import { createS3Client } from '../../core/clients';
import { freePort } from '../../local/ports';
import { startLoopbackStack, type LocalStack } from '../../local/stack';
import { testBytes } from '../support/s3';

/**
 * The console (web/) in Debian's Chromium against the whole local stack, as a user drives it: sign in,
 * Standard uploads by picker and drop, pause/resume and cancel of a large upload (checked against S3
 * itself), the bucket's transfer options, Standard downloads into a folder, High speed through the local
 * agent, and what the page says when the agent is stopped or the bucket is immutable. Screenshots of the
 * main states go to test-results/screenshots/ (not committed).
 */
const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const haveChromium = existsSync(chromiumPath);
if (!haveChromium && process.env.CI === 'true') throw new Error(`${chromiumPath} is required in CI for the console browser test (apt-get install chromium)`);

const MiB = 1024 * 1024;
const bucket = 'local';
const screenshotDir = join(process.cwd(), 'test-results', 'screenshots');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
/** Waits for the page like a user would, with room for a loaded machine (the whole suite runs at once). */
const poll = <T>(read: () => T | Promise<T>, timeoutMs = 15_000) => expect.poll(read, { timeout: timeoutMs, interval: 50 });

interface Seen {
  consoleErrors: { text: string; url: string }[];
  pageErrors: string[];
}

describe.skipIf(!haveChromium)('the web console in Chromium', () => {
  let work: string;
  let stack: LocalStack;
  let s3: S3Client;
  let browser: Browser;
  let page: Page;
  let agentUrl: string;
  let agentPort: number;
  let agent: RunningAgent | undefined;
  const seen: Seen = { consoleErrors: [], pageErrors: [] };
  /** Browser-logged failures the test causes on purpose: the agent down, a faked 409. */
  const expectedFailures: ((error: Seen['consoleErrors'][number]) => boolean)[] = [];

  const files = {
    hello: { name: 'hello.txt', bytes: testBytes(300 * 1024 + 17, 1) },
    dropped: { name: 'dropped.bin', bytes: testBytes(70 * 1024, 2) },
    album: { 'a.bin': testBytes(1 * MiB + 5, 3), 'sub/b.bin': testBytes(2 * MiB + 9, 4), 'sub/c.txt': testBytes(42, 5) } as Record<string, Buffer>,
    // Six 8 MiB parts (the fallback's default part size), the last one short.
    big: { name: 'big.bin', bytes: testBytes(5 * 8 * MiB + 3 * MiB + 11, 6) },
    cancel: { name: 'cancel.bin', bytes: testBytes(4 * 8 * MiB, 7) },
    fast: { name: 'fast.bin', bytes: testBytes(24 * MiB + 3, 8) },
  };

  const auth = () => ({ authorization: `Bearer ${stack.credentials.apiKey}` });
  const local = (...parts: string[]) => join(work, 'local', ...parts);
  const shot = (name: string) => page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });

  async function stored(key: string): Promise<string> {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return sha256(await object.Body!.transformToByteArray());
  }

  /** The row of a transfer in the panel, by name, in the given tab. */
  const row = (tab: 'active' | 'completed', name: string) => page.locator(`#panel-${tab} li.transfer`).filter({ has: page.locator('.t-name', { hasText: name }) });

  async function completed(name: string, timeoutMs = 30_000): Promise<string> {
    await page.getByRole('tab', { name: /^Completed/ }).click();
    const done = row('completed', name).first();
    await done.waitFor({ timeout: timeoutMs });
    const state = await done.getAttribute('data-state');
    const text = await done.innerText();
    expect(state, text).toBe('completed');
    await page.getByRole('tab', { name: /^Active/ }).click();
    return text;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'slipstream-console-'));
    mkdirSync(screenshotDir, { recursive: true });
    // The console as `npm start` builds it, into a folder of this run's own.
    const dist = join(work, 'dist');
    await build({ configFile: join(process.cwd(), 'web', 'vite.config.ts'), build: { outDir: dist }, logLevel: 'silent' });
    agentPort = await freePort();
    agentUrl = `http://127.0.0.1:${agentPort}`;
    stack = await startLoopbackStack(join(work, 'data'), { bucket, consoleDir: dist, agentUrl });
    s3 = createS3Client({ region: 'us-east-1', s3Endpoint: stack.s3Endpoint, s3ForcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });

    mkdirSync(local('album', 'sub'), { recursive: true });
    for (const f of [files.hello, files.dropped, files.big, files.cancel]) writeFileSync(local(f.name), f.bytes);
    for (const [path, bytes] of Object.entries(files.album)) writeFileSync(local('album', path), bytes);
    mkdirSync(join(work, 'share', 'inner'), { recursive: true });
    writeFileSync(join(work, 'share', files.fast.name), files.fast.bytes);
    writeFileSync(join(work, 'secret.txt'), 'not shared');

    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() === 'error') seen.consoleErrors.push({ text: msg.text(), url: msg.location().url });
    });
    page.on('pageerror', (error) => seen.pageErrors.push(error.message));
    await page.goto(`${stack.apiUrl}/`);
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await stack?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('signs in with an API key and shows the bucket', async () => {
    // Before the agent runs, the page tries to reach it: the browser logs that refused connection.
    expectedFailures.push((e) => e.text.includes('ERR_CONNECTION_REFUSED') && e.url.startsWith(agentUrl));
    await page.getByLabel('API key').fill(stack.credentials.apiKey);
    await shot('01-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await poll(() => page.locator('.crumbs').innerText()).toContain(bucket);
    expect(await page.evaluate(() => sessionStorage.getItem('slipstream.apiKey'))).toBe(stack.credentials.apiKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    // The bucket's default is High speed; without an agent the page says how to start one and offers Standard.
    const notice = page.getByRole('region', { name: 'Local agent' });
    await poll(() => notice.innerText()).toContain('not running');
    await shot('02-agent-not-running');
    await notice.getByRole('button', { name: 'Use Standard instead' }).click();
    expect(await page.getByLabel('Standard').isChecked()).toBe(true);
  });

  it('uploads a file, a folder and a dropped file in Standard, byte for byte', async () => {
    await page.locator('input[type=file]:not([webkitdirectory])').setInputFiles(local(files.hello.name));
    await completed(files.hello.name);
    await page.locator('input[type=file][webkitdirectory]').setInputFiles(local('album'));
    const albumRow = await completed('album/');
    expect(albumRow).toContain('3 of 3 files');
    // A drop of a file onto the listing.
    await page.evaluate(
      ({ name, bytes }) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], name));
        const target = document.querySelector('.browser')!;
        target.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
        target.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      },
      { name: files.dropped.name, bytes: [...files.dropped.bytes] },
    );
    await completed(files.dropped.name);

    expect(await stored(files.hello.name)).toBe(sha256(files.hello.bytes));
    expect(await stored(files.dropped.name)).toBe(sha256(files.dropped.bytes));
    for (const [path, bytes] of Object.entries(files.album)) expect(await stored(`album/${path}`), path).toBe(sha256(bytes));
    // The listing shows the folder and the files, with sizes.
    await poll(() => page.locator('table.objects tbody').innerText()).toContain('album/');
    const listing = await page.locator('table.objects tbody').innerText();
    expect(listing).toContain(files.hello.name);
    expect(listing).toContain('307 KB');
    await page.getByRole('button', { name: 'album/' }).click();
    await poll(() => page.locator('table.objects tbody').innerText()).toContain('sub/');
    await shot('03-standard-uploads');
    await page.locator('.crumbs').getByRole('button', { name: bucket }).click();
    await poll(() => page.locator('table.objects tbody').innerText()).toContain(files.hello.name);
  });

  it('uploads a folder of many small files with a bounded number in flight', async () => {
    const count = 60;
    mkdirSync(local('many'));
    for (let i = 0; i < count; i++) writeFileSync(local('many', `f${String(i).padStart(4, '0')}.txt`), `file ${i}\n`);
    let inFlight = 0;
    let most = 0;
    const isPut = (req: PwRequest) => req.method() === 'PUT' && req.url().startsWith(`${stack.s3Endpoint}/${bucket}/many/`);
    const started = (req: PwRequest) => {
      if (!isPut(req)) return;
      inFlight++;
      most = Math.max(most, inFlight);
    };
    const ended = (req: PwRequest) => {
      if (isPut(req)) inFlight--;
    };
    page.on('request', started);
    page.on('requestfinished', ended);
    page.on('requestfailed', ended);
    await page.locator('input[type=file][webkitdirectory]').setInputFiles(local('many'));
    const text = await completed('many/', 60_000);
    page.off('request', started);
    page.off('requestfinished', ended);
    page.off('requestfailed', ended);
    expect(text).toContain(`${count} of ${count} files`);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(6);
    const listed = (await (await fetch(`${stack.apiUrl}/v1/buckets/${bucket}/objects?prefix=many/&limit=1000`, { headers: auth() })).json()) as { objects: unknown[] };
    expect(listed.objects).toHaveLength(count);
  });

  it('pauses and resumes a Standard upload of a large file, never sending a part S3 holds again', async () => {
    const key = files.big.name;
    const isPart = (url: string) => url.startsWith(`${stack.s3Endpoint}/${bucket}/${key}?`) && url.includes('partNumber=');
    const partOf = (url: string) => Number(new URL(url).searchParams.get('partNumber'));
    // Parts from 3 on wait here until the test lets them go: the pause lands mid-upload, every run.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held: number[] = [];
    const hold = async (route: Route) => {
      if (route.request().method() === 'PUT') held.push(partOf(route.request().url()));
      await gate;
      await route.continue().catch(() => undefined); // the page aborted it meanwhile (pause)
    };
    await page.route((url) => isPart(url.href) && partOf(url.href) >= 3, hold);
    const events: { kind: 'put' | 'ok' | 'failed' | 'list'; part: number; at: number }[] = [];
    let step = 0;
    page.on('request', (req) => {
      if (isPart(req.url()) && req.method() === 'PUT') events.push({ kind: 'put', part: partOf(req.url()), at: step++ });
      if (/\/v1\/fallback\/uploads\/tr_[0-9a-f]+\/parts$/.test(req.url()) && req.method() === 'GET') events.push({ kind: 'list', part: 0, at: step++ });
    });
    page.on('requestfinished', (req) => {
      if (isPart(req.url()) && req.method() === 'PUT') void req.response().then((r) => events.push({ kind: r?.status() === 200 ? 'ok' : 'failed', part: partOf(req.url()), at: step++ }));
    });
    page.on('requestfailed', (req: PwRequest) => {
      if (isPart(req.url()) && req.method() === 'PUT') events.push({ kind: 'failed', part: partOf(req.url()), at: step++ });
    });
    const created = page.waitForResponse((r) => r.url().endsWith('/v1/fallback/uploads') && r.request().method() === 'POST');
    await page.locator('input[type=file]:not([webkitdirectory])').setInputFiles(local(key));
    const upload = (await (await created).json()) as { transferId: string; uploadId: string; partCount: number };
    expect(upload.partCount).toBe(6);

    await poll(() => events.filter((e) => e.kind === 'ok').map((e) => e.part).sort()).toEqual([1, 2]).catch((error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify({ events, held })}`);
    });
    await poll(() => held.length).toBeGreaterThanOrEqual(2);
    await page.getByRole('button', { name: `Pause ${key}` }).click();
    await poll(() => row('active', key).getAttribute('data-state')).toBe('paused');
    await poll(() => events.filter((e) => e.kind === 'failed').length).toBeGreaterThanOrEqual(2);
    const pausedAt = step;
    const listParts = async () =>
      ((await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId }))).Parts ?? []).map((p) => ({ part: p.PartNumber, etag: p.ETag, size: p.Size, modified: p.LastModified?.toISOString() }));
    const atPause = await listParts();
    expect(atPause.map((p) => p.part)).toEqual([1, 2]);
    await shot('04-standard-upload-paused');

    // Let the held requests go (the page already aborted them), and look at S3 once more right before
    // the page completes the upload.
    release();
    let beforeComplete: Awaited<ReturnType<typeof listParts>> = [];
    await page.route(`**/v1/fallback/uploads/${upload.transferId}/complete`, async (route) => {
      beforeComplete = await listParts();
      await route.continue();
    });
    await page.getByRole('button', { name: `Resume ${key}` }).click();
    await completed(key, 60_000);

    const afterPause = events.filter((e) => e.at >= pausedAt);
    // Resume asked S3 which parts it holds, before sending any part.
    expect(afterPause[0]?.kind, JSON.stringify(events)).toBe('list');
    // After the pause, only parts S3 did not hold were sent.
    expect(afterPause.filter((e) => e.kind === 'put').map((e) => e.part).sort(), JSON.stringify(events)).toEqual([3, 4, 5, 6]);
    // Every part reached S3 exactly once.
    const accepted = events.filter((e) => e.kind === 'ok').map((e) => e.part).sort();
    expect(accepted, JSON.stringify(events)).toEqual([1, 2, 3, 4, 5, 6]);
    // The parts S3 held at the pause are untouched: same ETag, size and time.
    expect(beforeComplete.filter((p) => (p.part ?? 0) <= 2)).toEqual(atPause);
    expect(beforeComplete.map((p) => p.part)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await stored(key)).toBe(sha256(files.big.bytes));
    await page.unrouteAll({ behavior: 'ignoreErrors' });
  });

  it('cancels a Standard upload and aborts its multipart upload in S3', async () => {
    const key = files.cancel.name;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await page.route(
      (url) => url.href.startsWith(`${stack.s3Endpoint}/${bucket}/${key}?`) && Number(url.searchParams.get('partNumber')) >= 2,
      async (route) => {
        await gate;
        await route.continue().catch(() => undefined);
      },
    );
    const created = page.waitForResponse((r) => r.url().endsWith('/v1/fallback/uploads') && r.request().method() === 'POST');
    const firstPart = page.waitForResponse((r) => r.url().includes(`/${key}?`) && r.url().includes('partNumber=1&') && r.status() === 200);
    await page.locator('input[type=file]:not([webkitdirectory])').setInputFiles(local(key));
    const upload = (await (await created).json()) as { transferId: string; uploadId: string };
    await firstPart;
    expect((await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId }))).Parts?.map((p) => p.PartNumber)).toEqual([1]);
    await page.getByRole('button', { name: `Cancel ${key}` }).click();
    await page.getByRole('tab', { name: /^Completed/ }).click();
    await poll(() => row('completed', key).getAttribute('data-state')).toBe('canceled');
    release();
    await page.unrouteAll({ behavior: 'ignoreErrors' });

    const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId })).catch((error: Error) => error);
    expect((listed as Error).name).toBe('NoSuchUpload');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((error: Error) => error);
    expect((head as Error).name).toBe('NotFound');
    const transfer = (await (await fetch(`${stack.apiUrl}/v1/transfers/${upload.transferId}`, { headers: auth() })).json()) as { status: string };
    expect(transfer.status).toBe('CANCELED');
    await shot('05-completed-tab');
    await page.getByRole('tab', { name: /^Active/ }).click();
  });

  it("sets the bucket's transfer options and new transfers take them", async () => {
    await page.getByRole('button', { name: 'Transfer options' }).click();
    const dialog = page.getByRole('dialog', { name: `Transfer options for ${bucket}` });
    await dialog.locator('#upload-transport').selectOption('standard');
    await dialog.locator('#upload-target').fill('800');
    await dialog.locator('#upload-min').fill('10');
    await dialog.locator('#download-target').fill('600');
    await shot('06-transfer-options');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });

    const prefs = (await (await fetch(`${stack.apiUrl}/v1/buckets/${bucket}/preferences`, { headers: auth() })).json()) as {
      preferences: { upload: { defaultTransport: string; targetRateKbps: number; minRateKbps: number }; download: { targetRateKbps: number } };
    };
    expect(prefs.preferences.upload).toEqual({ defaultTransport: 'standard', targetRateKbps: 800_000, minRateKbps: 10_000 });
    expect(prefs.preferences.download.targetRateKbps).toBe(600_000);
    const setup = await fetch(`${stack.apiUrl}/files/upload_setup`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ transfer_requests: [{ transfer_request: { paths: [{ source: 'x.bin', size: 1 }], slipstream: { bucket } } }] }),
    });
    const spec = ((await setup.json()) as { transfer_specs: { transfer_spec: { target_rate_kbps: number; min_rate_kbps: number; slipstream: { transfer_id: string } } }[] }).transfer_specs[0]!.transfer_spec;
    expect(spec.target_rate_kbps).toBe(800_000);
    expect(spec.min_rate_kbps).toBe(10_000);
    await fetch(`${stack.apiUrl}/v1/transfers/${spec.slipstream.transfer_id}/cancel`, { method: 'POST', headers: auth() });
    // Reopened, the dialog shows what the service now holds.
    await page.getByRole('button', { name: 'Transfer options' }).click();
    expect(await dialog.locator('#upload-target').inputValue()).toBe('800');
    await dialog.getByRole('button', { name: 'Close' }).click();
  });

  it('downloads a file and a folder in Standard into a folder the user picks', async () => {
    // Chromium's folder picker is a native dialog: the page gets a folder of its private file system instead.
    await page.evaluate(() => {
      (window as { showDirectoryPicker?: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker = async () =>
        (await navigator.storage.getDirectory()).getDirectoryHandle('downloads', { create: true });
    });
    await page.getByRole('checkbox', { name: `Select ${files.hello.name}` }).check();
    await page.getByRole('checkbox', { name: 'Select folder album' }).check();
    await page.getByRole('button', { name: 'Download (2)' }).click();
    const text = await completed('2 items');
    expect(text).toContain('4 of 4 files');
    const saved = await page.evaluate(async () => {
      const out: Record<string, string> = {};
      const walk = async (dir: FileSystemDirectoryHandle, path: string) => {
        for await (const [name, handle] of dir as unknown as AsyncIterable<[string, FileSystemHandle]>) {
          if (handle.kind === 'directory') await walk(handle as FileSystemDirectoryHandle, `${path}${name}/`);
          else {
            const bytes = await (await (handle as FileSystemFileHandle).getFile()).arrayBuffer();
            out[`${path}${name}`] = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
          }
        }
      };
      await walk(await (await navigator.storage.getDirectory()).getDirectoryHandle('downloads'), '');
      return out;
    });
    expect(saved).toEqual({
      [files.hello.name]: sha256(files.hello.bytes),
      ...Object.fromEntries(Object.entries(files.album).map(([path, bytes]) => [`album/${path}`, sha256(bytes)])),
    });
  });

  it('uploads and downloads at high speed through the paired local agent, showing the rate', async () => {
    const token = newPairingToken();
    const downloads = join(work, 'agent-downloads');
    agent = await listenAgent({
      port: agentPort,
      allowedOrigins: [stack.apiUrl],
      token,
      shares: await Shares.open([join(work, 'share')]),
      downloadsDir: downloads,
      transfers: new AgentTransfers({ client: { journal: false } }),
    });
    await page.getByLabel('High speed').check();
    const notice = page.getByRole('region', { name: 'Local agent' });
    await poll(() => notice.innerText()).toContain('not paired');
    await notice.getByRole('button', { name: 'Pair with agent' }).click();
    const pairing = page.getByRole('dialog', { name: 'Pair with the Slipstream agent' });
    await pairing.getByLabel('Pairing token').fill('wrong-token-wrong-token');
    await pairing.getByRole('button', { name: 'Pair' }).click();
    await poll(() => pairing.locator('.error').innerText()).toContain('did not accept');
    await pairing.getByLabel('Pairing token').fill(token);
    await pairing.getByRole('button', { name: 'Pair' }).click();
    await poll(() => notice.innerText()).toContain('agent ready');
    expect(await page.evaluate(() => sessionStorage.getItem('slipstream.agentToken'))).toBe(token);

    await page.getByRole('button', { name: 'Upload from shared folders' }).click();
    const picker = page.getByRole('dialog', { name: 'Upload from shared folders' });
    await picker.getByRole('checkbox', { name: `Select ${files.fast.name}` }).check();
    await shot('07-shared-folder-picker');
    await picker.getByRole('button', { name: 'Upload selected (1)' }).click();
    const text = await completed(files.fast.name, 60_000);
    expect(text).toContain('High speed');
    expect(text).toMatch(/average \d+(\.\d+)? (kbit|Mbit|Gbit)\/s/);
    expect(text).not.toMatch(/average 0 kbit/);
    expect(await stored(files.fast.name)).toBe(sha256(files.fast.bytes));
    await shot('08-high-speed-upload');

    // Downloads go into the folder the agent was started with.
    await page.getByRole('checkbox', { name: `Select ${files.fast.name}` }).check();
    await page.getByRole('button', { name: 'Download (1)' }).click();
    await poll(() => row('completed', files.fast.name).count(), 60_000).toBe(2);
    await poll(() => existsSync(join(downloads, files.fast.name))).toBe(true);
    expect(sha256(readFileSync(join(downloads, files.fast.name)))).toBe(sha256(files.fast.bytes));
    await page.getByRole('tab', { name: /^Completed/ }).click();
    await shot('09-completed');
    await page.getByRole('tab', { name: /^Active/ }).click();

    // The pairing link slip agent prints pairs a fresh tab, and leaves the address bar.
    await page.evaluate(() => sessionStorage.removeItem('slipstream.agentToken'));
    await page.goto('about:blank');
    await page.goto(`${stack.apiUrl}/#agent-token=${token}`);
    await poll(() => notice.innerText()).toContain('agent ready');
    expect(await page.evaluate(() => [location.hash, sessionStorage.getItem('slipstream.agentToken')])).toEqual(['', token]);
    await page.getByLabel('High speed').check();
  });

  it('offers Standard once the agent is stopped', async () => {
    await agent!.stop();
    agent = undefined;
    await page.evaluate(() => window.dispatchEvent(new Event('focus')));
    const notice = page.getByRole('region', { name: 'Local agent' });
    await poll(() => notice.innerText()).toContain('not running');
    expect(await notice.innerText()).toContain('npx slip agent');
    await shot('10-agent-stopped');
    await notice.getByRole('button', { name: 'Use Standard instead' }).click();
    expect(await page.getByLabel('Standard').isChecked()).toBe(true);
    expect(await notice.isHidden()).toBe(true);
  });

  it('remembers the transport across visits only when asked to', async () => {
    await page.getByLabel('Remember my browser preferences').check();
    expect(JSON.parse((await page.evaluate(() => localStorage.getItem('slipstream.browserPreferences'))) ?? 'null')).toEqual({ transport: 'standard' });
    await page.reload();
    await poll(() => page.getByLabel('Standard').isChecked()).toBe(true);
    expect(await page.getByLabel('Remember my browser preferences').isChecked()).toBe(true);
    await page.getByLabel('Remember my browser preferences').uncheck();
    expect(await page.evaluate(() => localStorage.getItem('slipstream.browserPreferences'))).toBeNull();
  });

  it('shows High speed as unavailable, with the reason, for an immutable bucket', async () => {
    const message = 'bucket local has an immutability policy (S3 Object Lock), so high-speed and fallback transfers are refused';
    expectedFailures.push((e) => e.text.includes('status of 409') && e.url.includes('/local?faspConnectionInfo'));
    await page.route(/\/local\?faspConnectionInfo/, (route) =>
      route.fulfill({ status: 409, contentType: 'application/json', headers: { 'access-control-allow-origin': '*' }, body: JSON.stringify({ error: { code: 'BucketImmutable', message } }) }),
    );
    await page.reload();
    await poll(() => page.locator('#transport-note').innerText()).toContain('immutable');
    expect(await page.getByLabel('High speed').isDisabled()).toBe(true);
    expect(await page.locator('#transport-note').innerText()).toContain('S3 Object Lock');
    await shot('11-immutable-bucket');
    await page.unrouteAll({ behavior: 'ignoreErrors' });
  });

  it('logged no browser errors besides the failures the test caused', () => {
    expect(seen.pageErrors).toEqual([]);
    const unexpected = seen.consoleErrors.filter((e) => !expectedFailures.some((expected) => expected(e)));
    expect(unexpected).toEqual([]);
  });
});
