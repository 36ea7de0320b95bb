import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  connectionInfoSchema,
  errorBodySchema,
  fileUploadStateSchema,
  setupResponseSchema,
  signedFilePartsSchema,
  transferSchema,
  type TransferSpec,
} from '../../contracts';
import { freePort } from '../../local/ports';
import { checksumOf, partDigest } from '../../protocol/transfer';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket, readObject, testBytes } from '../support/s3';

/**
 * Reverse-proxy ("indirect") mode against a real nginx from Debian: the API mounted under /slipstream/
 * on nginx's port, with X-Forwarded-* headers trusted, hands out public URLs (prefix included), and an
 * HTTPS continuation of a transfer works through the prefix while the bytes go straight to S3.
 */

const prefix = '/slipstream';
const engineHost = 'engine.example.test';
let api: TestApi;
let bucket: string;
let server: ServerType;
let nginx: ChildProcess | undefined;
let dir: string;
let publicBase: string;

function nginxConf(listenPort: number, apiPort: number): string {
  // Everything nginx writes lives in `dir`: no root-owned default paths. As root its workers would
  // drop to nobody, who cannot write there; they stay root, on loopback, for this test only.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  return `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${listenPort};
    location ${prefix}/ {
      proxy_pass http://127.0.0.1:${apiPort}/;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Prefix ${prefix};
    }
  }
}
`;
}

async function startNginx(listenPort: number, apiPort: number): Promise<ChildProcess> {
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConf(listenPort, apiPort));
  const args = ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'];
  // With PR_SET_PDEATHSIG the kernel stops nginx even if this process dies without running afterAll.
  const setpriv = spawnSync('sh', ['-c', 'command -v setpriv']).stdout.toString().trim();
  const child = setpriv ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', 'nginx', ...args], { stdio: 'ignore' }) : spawn('nginx', args, { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => {
    const failed = (how: string) => reject(new Error(`nginx ${how}:\n${readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000)}`));
    child.once('error', (error) => failed(`could not be started (${error.message})`));
    child.once('exit', (code, signal) => failed(`exited (${signal ?? `code ${code}`})`));
  });
  const ready = (async () => {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      try {
        await fetch(`http://127.0.0.1:${listenPort}${prefix}/health`);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error('nginx did not answer within 5 s');
  })();
  await Promise.race([ready, exited]);
  exited.catch(() => undefined); // its later exit (afterAll) is expected
  return child;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-nginx-'));
  // publicUrl stays for requests that come without the proxy's headers.
  api = await createTestApi(inject('s3rver'), { trustProxy: true, publicUrl: 'http://api.test', engineHost });
  bucket = await createBucket(inject('s3rver'), { prefix: 'proxy' });
  await new Promise<void>((ready) => {
    server = serve({ fetch: api.app.fetch, hostname: '127.0.0.1', port: 0 }, () => ready());
  });
  const apiPort = (server.address() as AddressInfo).port;
  const nginxPort = await freePort();
  nginx = await startNginx(nginxPort, apiPort);
  publicBase = `http://127.0.0.1:${nginxPort}${prefix}`;
});

afterAll(async () => {
  if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
    const stopped = new Promise((resolve) => nginx!.once('exit', resolve));
    nginx.kill('SIGTERM');
    await stopped;
  }
  await new Promise((resolve) => server?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A request through nginx, with the admin key. */
function viaProxy(path: string, init: { method?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(`${publicBase}${path}`, {
    method: init.method ?? (init.json === undefined ? 'GET' : 'POST'),
    headers: {
      authorization: `Bearer ${api.adminKey}`,
      ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...init.headers,
    },
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
}

async function uploadSpec(path: string, size: number): Promise<TransferSpec> {
  const res = await viaProxy('/files/upload_setup', {
    json: { transfer_requests: [{ transfer_request: { paths: [{ source: path, size }], destination_root: '/proxied', slipstream: { bucket } } }] },
  });
  expect(res.status).toBe(200);
  const entry = setupResponseSchema.parse(await res.json()).transfer_specs[0]!;
  if (!('transfer_spec' in entry)) throw new Error(entry.error.user_message);
  return entry.transfer_spec;
}

describe('behind nginx, mounted under /slipstream/', () => {
  it('hands out connection info with the public URLs, as JSON and as IBM COS XML', async () => {
    const res = await viaProxy(`/${bucket}?faspConnectionInfo`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    const info = connectionInfoSchema.parse(await res.json());
    expect(info).toMatchObject({ atsEndpoint: publicBase, fallbackUrl: `${publicBase}/v1/fallback`, engine: { host: engineHost } });
    const xml = await (await viaProxy(`/${bucket}?faspConnectionInfo`)).text();
    expect(xml).toContain(`<ATSEndpoint>${publicBase}</ATSEndpoint>`);
    // The access key works through the proxy too.
    const basic = `Basic ${Buffer.from(`${info.accessKey.id}:${info.accessKey.secret}`).toString('base64')}`;
    expect((await viaProxy(`/v1/buckets/${bucket}/preferences`, { headers: { authorization: basic } })).status).toBe(200);
  });

  it('puts the public URLs and ports into transfer specs; the engine host stays the configured one', async () => {
    const spec = await uploadSpec('a.bin', 10);
    const port = Number(new URL(publicBase).port);
    expect(spec).toMatchObject({ remote_host: engineHost, http_fallback_port: port, slipstream: { api_url: publicBase, fallback_url: `${publicBase}/v1/fallback` } });
  });

  it('continues an upload over HTTPS through the prefix, the bytes going straight to S3', async () => {
    const data = testBytes(300_000, 41);
    const spec = await uploadSpec('proxied.bin', data.length);
    const id = spec.slipstream.transfer_id;
    const switched = await viaProxy(`/v1/transfers/${id}/transport`, { json: { transport: 'http', reason: 'UDP blocked by a firewall' } });
    expect(transferSchema.parse(await switched.json())).toMatchObject({ transport: 'http', status: 'RUNNING' });
    const state = fileUploadStateSchema.parse(
      await (await viaProxy(`/v1/transfers/${id}/files/0/upload`, { json: { path: 'proxied.bin', sizeBytes: data.length, sha256: checksumOf(data) } })).json(),
    );
    expect(state).toMatchObject({ status: 'open', partCount: 1, parts: [] });
    const md5 = createHash('md5').update(data).digest('base64');
    const signed = signedFilePartsSchema.parse(await (await viaProxy(`/v1/transfers/${id}/files/0/parts`, { json: { parts: [{ partNumber: 1, md5 }] } })).json());
    const part = signed.parts[0]!;
    expect(new URL(part.url).origin).toBe(new URL(inject('s3rver').endpoint).origin);
    const put = await fetch(part.url, { method: 'PUT', headers: part.headers, body: new Uint8Array(data) });
    expect(put.status).toBe(200);
    const sha256 = Buffer.from(partDigest(data)).toString('hex');
    expect((await viaProxy(`/v1/transfers/${id}/files/0/parts/1`, { json: { etag: put.headers.get('etag'), sha256 } })).status).toBe(200);
    expect((await viaProxy(`/v1/transfers/${id}/files/0/complete`, { json: { sha256: checksumOf(data) } })).status).toBe(200);
    const finished = transferSchema.parse(await (await viaProxy(`/v1/transfers/${id}/finish`, { json: { files: 1 } })).json());
    expect(finished).toMatchObject({ status: 'COMPLETED', bytesTransferred: data.length });
    expect((await readObject(inject('s3rver'), bucket, `${spec.slipstream.key_prefix}proxied.bin`)).equals(data)).toBe(true);
  });

  it('uses the configured public URL for requests that do not come through the proxy', async () => {
    const info = connectionInfoSchema.parse(await (await api.call(`/${bucket}?faspConnectionInfo`, { headers: { accept: 'application/json' } })).json());
    expect(info.atsEndpoint).toBe('http://api.test');
  });

  it('refuses forwarded headers it cannot use rather than hand out a broken URL', async () => {
    const res = await api.call(`/${bucket}?faspConnectionInfo`, { headers: { accept: 'application/json', 'x-forwarded-prefix': '/a/../b' } });
    expect(res.status).toBe(400);
    expect(errorBodySchema.parse(await res.json()).error.message).toContain('X-Forwarded-Prefix');
  });
});

describe('public URL without a trusted proxy', () => {
  it('ignores X-Forwarded-* headers, which any client can send', async () => {
    const direct = await createTestApi(inject('s3rver'));
    const res = await direct.call(`/${bucket}?faspConnectionInfo`, {
      headers: { accept: 'application/json', 'x-forwarded-host': 'attacker.example', 'x-forwarded-proto': 'https', 'x-forwarded-prefix': '/evil' },
    });
    expect(connectionInfoSchema.parse(await res.json()).atsEndpoint).toBe('http://api.test');
  });

  it('takes a configured public URL with a path prefix as the base of every URL', async () => {
    const mounted = await createTestApi(inject('s3rver'), { publicUrl: 'https://files.example.com/slipstream/' });
    const info = connectionInfoSchema.parse(await (await mounted.call(`/${bucket}?faspConnectionInfo`, { headers: { accept: 'application/json' } })).json());
    expect(info).toMatchObject({ atsEndpoint: 'https://files.example.com/slipstream', fallbackUrl: 'https://files.example.com/slipstream/v1/fallback' });
    const res = await mounted.call('/files/upload_setup', {
      method: 'POST',
      json: { transfer_requests: [{ transfer_request: { paths: [{ source: 'a' }], slipstream: { bucket } } }] },
    });
    const entry = setupResponseSchema.parse(await res.json()).transfer_specs[0]!;
    expect(entry).toMatchObject({ transfer_spec: { https_fallback_port: 443, slipstream: { api_url: 'https://files.example.com/slipstream' } } });
  });
});
