import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../local/ports';
import { startLoopbackStack, type LocalStack } from '../../local/stack';

/**
 * `slip` as a user runs it: a real child process against the local stack (started in-process on free
 * ports), configured by walking up to the stack's `.slipstream/credentials.json`, or by environment.
 * Upload and download need the UDP engine and are covered by the TransferClient unit test.
 */
const repo = resolve(__dirname, '..', '..');
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
let root: string;
let elsewhere: string;
let stack: LocalStack;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json: () => any;
}

/** The CLI with a clean environment: a throwaway HOME and state dir, no SLIPSTREAM_* from the test runner. */
function slip(args: string[], options: { cwd: string; env?: Record<string, string>; via?: 'bin' | 'main' }): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('SLIPSTREAM_') && !k.startsWith('XDG_')) env[k] = v;
  Object.assign(env, { HOME: join(root, 'home'), SLIPSTREAM_STATE_DIR: join(root, 'state'), NO_COLOR: '1' }, options.env);
  const entry = options.via === 'main' ? ['--import', tsxLoader, join(repo, 'client/cli/main.ts')] : [join(repo, 'client/cli/bin.mjs')];
  const child = spawn(process.execPath, [...entry, ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`slip ${args.join(' ')} did not finish in 30 s:\n${stdout}\n${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, json: () => JSON.parse(stdout) });
    });
  });
}

/** Inside the folder that holds the stack's `.slipstream/`, a few levels down. */
const inProject = () => ({ cwd: join(root, 'work', 'deep') });

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'slip-cli-'));
  elsewhere = mkdtempSync(join(tmpdir(), 'slip-cli-elsewhere-'));
  mkdirSync(join(root, 'work', 'deep'), { recursive: true });
  mkdirSync(join(root, 'home'), { recursive: true });
  stack = await startLoopbackStack(join(root, '.slipstream'));
});

afterAll(async () => {
  await stack?.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

describe('slip against the local stack (config found by walking up)', () => {
  it('prefs set, then prefs get --json', async () => {
    const set = await slip(['prefs', 'set', 'local', '--upload-target-kbps', '5000', '--download-min-kbps', '10', '--rate-policy', 'low', '--http-fallback', 'force'], inProject());
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/upload\s+high-speed, target 5.0 Mbit\/s/);
    const get = await slip(['prefs', 'get', 'local', '--json'], inProject());
    expect(get.code).toBe(0);
    expect(get.json()).toMatchObject({
      bucket: 'local',
      preferences: { upload: { targetRateKbps: 5000 }, download: { minRateKbps: 10 }, ratePolicy: 'low', httpFallback: 'force' },
    });
    expect(get.json().updatedAt).toEqual(expect.any(String));
  });

  it('doctor --json: config, API, auth, clock, bucket, fallback, token and UDP ok; probe transfer canceled', async () => {
    const run = await slip(['doctor', '--json'], inProject());
    const report = run.json();
    const status = Object.fromEntries(report.checks.map((c: { name: string; status: string }) => [c.name, c.status]));
    expect(status).toMatchObject({ config: 'ok', api: 'ok', auth: 'ok', clock: 'ok', bucket: 'ok', fallback: 'ok', token: 'ok' });
    expect(report).toMatchObject({ endpoint: stack.apiUrl, bucket: 'local' });
    const config = report.checks.find((c: { name: string }) => c.name === 'config');
    expect(config.detail).toContain(join(root, '.slipstream', 'credentials.json'));
    expect(config.detail).not.toContain(stack.credentials.apiKey);
    const bucket = report.checks.find((c: { name: string }) => c.name === 'bucket');
    expect(bucket.detail).toContain('no immutability policy');
    // The stack runs the engine: the UDP check reaches it.
    expect(status.udp).toBe('ok');
    expect(report.ok).toBe(true);
    expect(run.code).toBe(0);
  });

  it('ls --json lists transfers; --active leaves out ended ones', async () => {
    const all = await slip(['ls', '--json'], inProject());
    expect(all.code).toBe(0);
    const body = all.json();
    expect(body).toMatchObject({ transfers: expect.any(Array), nextCursor: null });
    const probe = body.transfers.find((t: { keyPrefix: string; status: string }) => t.status === 'CANCELED');
    expect(probe).toMatchObject({ bucket: 'local', direction: 'upload' }); // doctor's token probe, canceled
    const active = (await slip(['ls', '--active', '--json'], inProject())).json();
    expect(active.transfers.map((t: { id: string }) => t.id)).not.toContain(probe.id);
    const table = await slip(['ls', '--completed'], inProject());
    expect(table.stdout).toMatch(/^ID\s+STATUS\s+DIR/);
    expect(table.stdout).toContain(probe.id);
  });

  it('wrong key → exit 3', async () => {
    const run = await slip(['ls', '--json', '--api-key', 'sk_0000000000000000_wrong'], inProject());
    expect(run.code).toBe(3);
    expect(run.json()).toMatchObject({ error: { code: 'Unauthorized', exitCode: 3 } });
    expect(run.stderr).toMatch(/^slip: the credentials are wrong/);
    const doctor = await slip(['doctor', '--api-key', 'sk_0000000000000000_wrong'], inProject());
    expect(doctor.code).toBe(3);
    expect(doctor.stdout).toMatch(/fail\s+auth\s+the API key is refused/);
  });

  it('unknown bucket → exit 4', async () => {
    const download = await slip(['download', 's3://no-such-bucket-zz/photos/', join(root, 'dl')], inProject());
    expect(download.code).toBe(4);
    expect(download.stderr).toContain('bucket no-such-bucket-zz does not exist');
    const doctor = await slip(['doctor', 'no-such-bucket-zz', '--json'], inProject());
    expect(doctor.code).toBe(4);
    expect(doctor.json().checks.find((c: { name: string }) => c.name === 'bucket')).toMatchObject({ status: 'fail', exitCode: 4 });
  });

  it('usage errors → exit 2', async () => {
    for (const args of [[], ['frobnicate'], ['upload'], ['upload', 'a.txt', 'not-an-url'], ['ls', '--nope'], ['prefs', 'set', 'local'], ['prefs', 'set', 'local', '--rate-policy', 'greedy'], ['download', 's3://Bad_Bucket/x', '.']]) {
      const run = await slip(args, inProject());
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(/^slip: /);
    }
  });
});

describe('slip configured by environment, outside any stack folder', () => {
  const env = () => ({ SLIPSTREAM_ENDPOINT: stack.apiUrl, SLIPSTREAM_API_KEY: stack.credentials.apiKey });

  it('runs ls and doctor with the key from SLIPSTREAM_API_KEY', async () => {
    const ls = await slip(['ls', '--json'], { cwd: elsewhere, env: env(), via: 'main' });
    expect(ls.code).toBe(0);
    expect(ls.json().transfers.length).toBeGreaterThan(0);
    const doctor = await slip(['doctor', 'local', '--json'], { cwd: elsewhere, env: env(), via: 'main' });
    const config = doctor.json().checks.find((c: { name: string }) => c.name === 'config');
    expect(config).toMatchObject({ status: 'ok' });
    expect(config.detail).toContain('env SLIPSTREAM_ENDPOINT');
    expect(config.detail).toContain('env SLIPSTREAM_API_KEY');
  });

  it('no config → exit 3; an endpoint that does not answer → exit 6', async () => {
    const none = await slip(['ls'], { cwd: elsewhere });
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no endpoint and no API key configured/);
    const port = await freePort();
    const down = await slip(['ls', '--endpoint', `http://127.0.0.1:${port}`, '--api-key', 'sk_x'], { cwd: elsewhere });
    expect(down.code).toBe(6);
    expect(down.stderr).toMatch(/cannot reach .*ECONNREFUSED/);
  });
});
