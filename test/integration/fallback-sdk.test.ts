import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../client/cli/commands/doctor';
import { resolveConfig } from '../../client/sdk/config';
import { TransferClient, type Transfer, type TransferOptions } from '../../client/sdk/transfer-client';
import { createDocumentClient } from '../../core/clients';
import { PartRepository, type PartRecord } from '../../core/state/parts';
import { freePort } from '../../local/ports';
import { startLoopbackStack, type LocalStack } from '../../local/stack';
import { readObject, s3For, testBytes } from '../support/s3';

/**
 * HTTPS fallback end to end: UDP to the engine really blocked (an nftables rule dropping the engine's UDP
 * port on this machine), at the start of a transfer and in the middle of one; a real HTTP proxy
 * (tinyproxy from Debian) carrying everything that goes over HTTP.
 */
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-fallback-'));
const nftTable = `slipstream_test_${process.pid}`;
let stack: LocalStack;
let enginePort: number;
let parts: PartRepository;

function hasTool(tool: string, args: string[]): boolean {
  try {
    execFileSync(tool, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const canBlockUdp = hasTool('nft', ['list', 'tables']);
const hasTinyproxy = hasTool('tinyproxy', ['-v']);
if (process.env.CI && !(canBlockUdp && hasTinyproxy)) throw new Error('CI needs nft (nftables) and tinyproxy: see .ci/run');

/** Drops every UDP datagram to and from the engine's port (the kernel's output hook, so loopback too). */
function blockUdp(): void {
  execFileSync('nft', ['add', 'table', 'inet', nftTable]);
  execFileSync('nft', ['add', 'chain', 'inet', nftTable, 'out', '{ type filter hook output priority 0; }']);
  execFileSync('nft', ['add', 'rule', 'inet', nftTable, 'out', 'udp', 'dport', String(enginePort), 'drop']);
  execFileSync('nft', ['add', 'rule', 'inet', nftTable, 'out', 'udp', 'sport', String(enginePort), 'drop']);
}

function unblockUdp(): void {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', nftTable], { stdio: 'ignore' });
  } catch {
    // Not blocked.
  }
}

const s3rverTarget = () => ({ name: 's3rver' as const, endpoint: stack.s3Endpoint, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });

beforeAll(async () => {
  enginePort = await freePort();
  stack = await startLoopbackStack(join(dir, 'data'), { enginePort });
  parts = new PartRepository(createDocumentClient(stack.config), stack.config.tableName);
});

afterEach(() => unblockUdp());

afterAll(async () => {
  unblockUdp();
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Short detection in tests; the defaults (5 s, 10 s) are documented in the README. */
const fast: TransferOptions = { httpFallback: true, udpHandshakeTimeoutMs: 1_000, udpSilenceTimeoutMs: 1_500 };

function client(env: NodeJS.ProcessEnv = {}): TransferClient {
  return new TransferClient({ endpoint: stack.apiUrl, apiKey: stack.credentials.apiKey, journal: false, env, cwd: dir });
}

async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${stack.credentials.apiKey}`, 'content-type': 'application/json' },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return (await res.json()) as T;
}

function writeFolder(root: string, files: Record<string, Buffer>): void {
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), bytes);
  }
}

async function expectObjects(prefix: string, files: Record<string, Buffer>): Promise<void> {
  for (const [path, bytes] of Object.entries(files)) {
    expect((await readObject(s3rverTarget(), 'local', `${prefix}/${path}`)).equals(bytes), path).toBe(true);
  }
}

/** Resolves once `count` parts of the transfer are recorded durable by the engine. */
async function durableParts(transferId: string, count: number): Promise<PartRecord[]> {
  for (;;) {
    const recorded = await parts.allParts(transferId);
    if (recorded.length >= count) return recorded;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('HTTPS fallback continues the transfer', () => {
  it.runIf(canBlockUdp)('uploads a folder over HTTPS when UDP is blocked from the start', async () => {
    const files: Record<string, Buffer> = { 'big.bin': testBytes(19 * MiB + 5, 1), 'empty.txt': Buffer.alloc(0) };
    for (let i = 0; i < 20; i += 1) files[`small/${i}.txt`] = testBytes(100 + i * 37, i + 2);
    writeFolder(join(dir, 'start', 'folder'), files);
    blockUdp();
    const transfer = await client().upload(join(dir, 'start', 'folder'), 's3://local/fb-start', fast);
    const switches: string[] = [];
    transfer.on('transport', (c) => switches.push(c.transport));
    const result = await transfer.done;
    expect(result, JSON.stringify(result.error)).toMatchObject({ status: 'COMPLETED', filesDone: 22, transport: 'http' });
    expect(switches).toEqual(['http']);
    expect(result.transportChanges[0]!.reason).toMatch(new RegExp(`127\\.0\\.0\\.1:${enginePort}`));
    await expectObjects('fb-start/folder', files);
    const record = await api<{ status: string; transport: string; transportChanges: { transport: string; reason: string }[] }>(`/v1/transfers/${transfer.id}`);
    expect(record).toMatchObject({ status: 'COMPLETED', transport: 'http' });
    expect(record.transportChanges.map((c) => c.transport)).toEqual(['http']);
    const recorded = await parts.allParts(transfer.id);
    expect(recorded.length).toBeGreaterThan(0);
    expect(recorded.every((p) => p.transport === 'http')).toBe(true);
    // Stored with the verified checksum as metadata, as on the UDP path.
    const head = await s3For(s3rverTarget()).send(new HeadObjectCommand({ Bucket: 'local', Key: 'fb-start/folder/big.bin' }));
    expect(head.Metadata?.['slipstream-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it.runIf(canBlockUdp)('continues an upload over HTTPS when UDP goes silent mid-transfer, without re-sending durable parts', async () => {
    const bytes = testBytes(72 * MiB + 3, 7);
    writeFolder(join(dir, 'mid'), { 'file.bin': bytes });
    // Slow enough over UDP that the block lands mid-file (10 parts of 8 MiB, the last 3 bytes).
    const transfer = await client().upload(join(dir, 'mid', 'file.bin'), 's3://local/fb-mid', { ...fast, targetRateKbps: 60_000, ratePolicy: 'fixed' });
    const before = await durableParts(transfer.id, 2);
    blockUdp();
    const result = await transfer.done;
    expect(result, JSON.stringify(result.error)).toMatchObject({ status: 'COMPLETED', filesDone: 1 });
    expect(result.transportChanges.map((c) => c.transport)).toEqual(['http']);
    expect(result.transportChanges[0]!.reason).toMatch(/nothing (heard|acknowledged)/);
    expect((await readObject(s3rverTarget(), 'local', 'fb-mid/file.bin')).equals(bytes)).toBe(true);
    const after = await parts.allParts(transfer.id);
    expect(after.map((p) => p.partNumber)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Parts durable before the switch kept their UDP record: HTTPS did not send them again.
    for (const part of before) {
      const now = after.find((p) => p.partNumber === part.partNumber)!;
      expect({ transport: now.transport ?? 'udp', etag: now.etag, recordedAt: now.recordedAt }).toEqual({ transport: 'udp', etag: part.etag, recordedAt: part.recordedAt });
    }
    expect(after.filter((p) => (p.transport ?? 'udp') === 'http').length).toBeGreaterThan(0);
  });

  it.runIf(canBlockUdp)('continues a download with ranged GETs when UDP goes silent mid-transfer', async () => {
    const bytes = testBytes(64 * MiB + 11, 9);
    writeFolder(join(dir, 'dl-src'), { 'one.bin': bytes, 'two.txt': Buffer.from('second file') });
    const up = await (await client().upload(join(dir, 'dl-src'), 's3://local/fb-dl', { httpFallback: 'force' })).done;
    expect(up.status).toBe('COMPLETED');
    const out = join(dir, 'dl-out');
    // ~10 s over UDP at this rate: the block lands mid-transfer even when progress events come late.
    const transfer = await client().download('s3://local/fb-dl/dl-src/', out, { ...fast, targetRateKbps: 50_000, ratePolicy: 'fixed' });
    await waitFor(transfer, (p) => p.bytesDone > 4 * MiB);
    blockUdp();
    const result = await transfer.done;
    expect(result, JSON.stringify(result.error)).toMatchObject({ status: 'COMPLETED', filesDone: 2 });
    expect(result.transportChanges.map((c) => c.transport)).toEqual(['http']);
    expect(readFileSync(join(out, 'dl-src', 'one.bin')).equals(bytes)).toBe(true);
    expect(readFileSync(join(out, 'dl-src', 'two.txt'), 'utf8')).toBe('second file');
  });

  it.runIf(canBlockUdp)('fails naming the UDP host and port when fallback is off', async () => {
    writeFolder(join(dir, 'off'), { 'a.txt': Buffer.from('x') });
    blockUdp();
    const result = await (await client().upload(join(dir, 'off', 'a.txt'), 's3://local/fb-off', { ...fast, httpFallback: false })).done;
    expect(result.status).toBe('FAILED');
    expect(result.error?.code).toBe('UdpUnreachable');
    expect(result.error?.message).toContain(`127.0.0.1:${enginePort}`);
    expect(result.error?.message).toMatch(/fallback is off/);
    expect(result.transportChanges).toEqual([]);
  });

  it('refuses fallback at spec time when the bucket disables it', async () => {
    await api('/v1/buckets/local/preferences', { method: 'PATCH', body: { httpFallback: 'false' } });
    try {
      writeFolder(join(dir, 'prefs'), { 'a.txt': Buffer.from('x') });
      await expect(client().upload(join(dir, 'prefs', 'a.txt'), 's3://local/fb-prefs', { httpFallback: true })).rejects.toMatchObject({ code: 'HttpFallbackDisabled' });
    } finally {
      await api('/v1/buckets/local/preferences', { method: 'PATCH', body: { httpFallback: 'true' } });
    }
  });
});

describe('through an HTTP proxy (tinyproxy) with UDP blocked', () => {
  let proxy: ChildProcess | undefined;
  let proxyUrl: string;
  const logFile = join(dir, 'tinyproxy.log');

  beforeAll(async () => {
    if (!hasTinyproxy) return;
    const port = await freePort();
    const conf = join(dir, 'tinyproxy.conf');
    writeFileSync(conf, [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 600', `LogFile "${logFile}"`, 'LogLevel Info', 'MaxClients 64', 'Allow 127.0.0.1', ''].join('\n'));
    proxy = spawn('tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
    proxyUrl = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && !(await accepts(port)); i += 1) await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(() => {
    proxy?.kill();
  });

  const proxied = () => ({ HTTPS_PROXY: proxyUrl, HTTP_PROXY: proxyUrl });
  const proxiedTo = (url: string) => readFileSync(logFile, 'utf8').includes(`opening connection to ${new URL(url).host}`);

  it.runIf(canBlockUdp && hasTinyproxy)('uploads over HTTPS with every HTTP request through the proxy', async () => {
    const files = { 'p.bin': testBytes(9 * MiB + 1, 21), 'q.txt': Buffer.from('through the proxy') };
    writeFolder(join(dir, 'proxy'), files);
    blockUdp();
    const result = await (await client(proxied()).upload(join(dir, 'proxy'), 's3://local/fb-proxy', fast)).done;
    expect(result, JSON.stringify(result.error)).toMatchObject({ status: 'COMPLETED', filesDone: 2 });
    await expectObjects('fb-proxy/proxy', files);
    // API calls and the presigned S3 part uploads both went through the proxy.
    expect(proxiedTo(stack.apiUrl)).toBe(true);
    expect(proxiedTo(stack.s3Endpoint)).toBe(true);
  });

  it.runIf(canBlockUdp && hasTinyproxy)('slip doctor says UDP is blocked and HTTPS works through the proxy', async () => {
    blockUdp();
    const env = { ...proxied(), SLIPSTREAM_ENDPOINT: stack.apiUrl, SLIPSTREAM_API_KEY: stack.credentials.apiKey };
    const report = await runDoctor({ resolve: () => resolveConfig({ env, cwd: dir }), bucket: 'local', env });
    const check = (name: string) => report.checks.find((c) => c.name === name)!;
    expect(check('proxy').detail).toContain(proxyUrl);
    expect(check('udp').status).toBe('warn');
    expect(check('transports')).toMatchObject({ status: 'warn' });
    expect(check('transports').detail).toMatch(/UDP is blocked.*HTTPS works through/);
    expect(report.ok).toBe(true);
  }, 30_000);
});

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

async function waitFor(transfer: Transfer, test: (p: Transfer['progress']) => boolean): Promise<void> {
  if (test(transfer.progress)) return;
  await new Promise<void>((resolve) => {
    const listener = (p: Transfer['progress']) => {
      if (!test(p)) return;
      transfer.off('progress', listener);
      resolve();
    };
    transfer.on('progress', listener);
  });
}
