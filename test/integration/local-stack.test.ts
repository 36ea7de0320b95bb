import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/ports';
import { readObject, testBytes } from '../support/s3';

/**
 * `npm start` as a user runs it: a real process with real s3rver and dynalite children, driven over
 * HTTP, read back with Debian's awscli, stopped with Ctrl-C (SIGINT) and started again on the same data.
 */
const MiB = 1024 * 1024;
const dataDir = mkdtempSync(join(tmpdir(), 'slipstream-stack-'));
let ports: { api: number; s3: number; ddb: number; engine: number; health: number };
let running: ChildProcessWithoutNullStreams | undefined;

function startStack(extraArgs: string[] = [], env: Record<string, string> = {}) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'local/main.ts', '--port', String(ports.api), '--s3-port', String(ports.s3), '--dynamodb-port', String(ports.ddb), '--engine-port', String(ports.engine), '--engine-health-port', String(ports.health), '--data-dir', dataDir, ...extraArgs],
    { env: { ...process.env, ...env }, stdio: 'pipe' },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stack did not start in 60 s:\n${out}\n${err}`)), 60_000);
    child.stdout.on('data', () => {
      if (out.includes('Press Ctrl-C to stop.')) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`stack exited with ${code}`), { code, out, err }));
    });
  });
  return { child, ready };
}

function stopStack(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGINT');
  });
}

async function portOpen(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/`).then(
    () => true,
    () => false,
  );
}

const credentials = () => JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')) as { apiKey: string; apiUrl: string };
const auth = () => ({ authorization: `Bearer ${credentials().apiKey}` });
const data = testBytes(6 * MiB + 777, 11);

beforeAll(async () => {
  ports = { api: await freePort(), s3: await freePort(), ddb: await freePort(), engine: await freePort(), health: await freePort() };
});

afterAll(async () => {
  if (running && running.exitCode === null) await stopStack(running);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('starts everything, prints where it runs and a copy-paste example', async () => {
    const { child, ready } = startStack();
    running = child;
    const out = await ready;
    expect(out).toContain(`http://127.0.0.1:${ports.api}`);
    expect(out).toContain('created and saved in');
    expect(out).toMatch(/curl -H "Authorization: Bearer \$SLIPSTREAM_API_KEY"/);
    expect(credentials().apiKey).toMatch(/^sk_/);
  });

  it('serves faspConnectionInfo, upload_setup, preferences and transfers', async () => {
    const base = `http://127.0.0.1:${ports.api}`;
    const xml = await (await fetch(`${base}/local?faspConnectionInfo`, { headers: auth() })).text();
    expect(xml).toContain(`<ATSEndpoint>http://127.0.0.1:${ports.api}</ATSEndpoint>`);
    const setup = await fetch(`${base}/files/upload_setup`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ transfer_requests: [{ transfer_request: { paths: [{ source: 'a.bin' }], destination_root: '/x', slipstream: { bucket: 'local' } } }] }),
    });
    expect(setup.status).toBe(200);
    const prefs = await fetch(`${base}/v1/buckets/local/preferences`, {
      method: 'PATCH',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ upload: { targetRateKbps: 123_456 }, ratePolicy: 'low' }),
    });
    expect(prefs.status).toBe(200);
    const transfers = (await (await fetch(`${base}/v1/transfers`, { headers: auth() })).json()) as { transfers: unknown[] };
    expect(transfers.transfers.length).toBeGreaterThan(0);
  });

  it('uploads through the fallback path and the object reads back byte-exact with awscli', async () => {
    const base = `http://127.0.0.1:${ports.api}`;
    const post = (path: string, body: unknown) =>
      fetch(`${base}${path}`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<Record<string, any>>);
    const upload = await post('/v1/fallback/uploads', { bucket: 'local', key: 'stack/file.bin', sizeBytes: data.length, partSizeBytes: 5 * MiB });
    const { parts } = await post(`/v1/fallback/uploads/${upload.transferId}/parts`, { partNumbers: [1, 2] });
    for (const part of parts) {
      const start = (part.partNumber - 1) * 5 * MiB;
      expect((await fetch(part.url, { method: 'PUT', body: new Uint8Array(data.subarray(start, start + part.sizeBytes)) })).status).toBe(200);
    }
    const done = await fetch(`${base}/v1/fallback/uploads/${upload.transferId}/complete`, { method: 'POST', headers: auth() });
    expect(done.status).toBe(200);

    const target = join(dataDir, 'readback.bin');
    const aws = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';
    const result = spawnSync(aws, ['s3', 'cp', 's3://local/stack/file.bin', target, '--endpoint-url', `http://127.0.0.1:${ports.s3}`, '--no-progress'], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
      encoding: 'utf8',
    });
    expect(result.status, result.stderr).toBe(0);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(target))).toBe(sha(data));
  });

  it('refuses a second stack on the same port with a clear message', async () => {
    const second = startStack();
    const failure = (await second.ready.catch((e: unknown) => e)) as { code: number; err: string };
    expect(failure.code).toBe(1);
    expect(failure.err).toMatch(new RegExp(`Cannot start: API: port ${ports.api} on 127.0.0.1 is already in use.*--port`));
    expect(failure.err).not.toMatch(/\n\s+at /);
  });

  it('stops cleanly on Ctrl-C, services included', async () => {
    expect(await stopStack(running!)).toBe(0);
    expect(await portOpen(ports.api)).toBe(false);
    expect(await portOpen(ports.s3)).toBe(false);
    expect(await portOpen(ports.ddb)).toBe(false);
  });

  it('keeps key, preferences and objects across a restart, and advertises the public host', async () => {
    const keyBefore = credentials().apiKey;
    const { child, ready } = startStack([], { SLIPSTREAM_PUBLIC_HOST: 'localhost' });
    running = child;
    const out = await ready;
    expect(out).not.toContain('created and saved in');
    expect(credentials().apiKey).toBe(keyBefore);
    const base = `http://127.0.0.1:${ports.api}`;
    const prefs = (await (await fetch(`${base}/v1/buckets/local/preferences`, { headers: auth() })).json()) as Record<string, any>;
    expect(prefs.preferences).toMatchObject({ upload: { targetRateKbps: 123_456 }, ratePolicy: 'low' });
    const info = (await (await fetch(`${base}/local?faspConnectionInfo`, { headers: { ...auth(), accept: 'application/json' } })).json()) as Record<string, any>;
    expect(info).toMatchObject({ atsEndpoint: `http://localhost:${ports.api}`, engine: { host: 'localhost' } });
    const upload = (await (
      await fetch(`${base}/v1/fallback/uploads`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify({ bucket: 'local', key: 'p.bin', sizeBytes: 1 }) })
    ).json()) as Record<string, any>;
    const signed = (await (
      await fetch(`${base}/v1/fallback/uploads/${upload.transferId}/parts`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify({ partNumbers: [1] }) })
    ).json()) as Record<string, any>;
    expect(new URL(signed.parts[0].url).host).toBe(`localhost:${ports.s3}`);
    const kept = await readObject({ name: 's3rver', endpoint: `http://127.0.0.1:${ports.s3}`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, 'local', 'stack/file.bin');
    expect(kept.equals(data)).toBe(true);
    expect(await stopStack(child)).toBe(0);
  });
});
