import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentTokenHeader } from '../../client/agent/schemas';
import { listenAgent, newPairingToken, type RunningAgent } from '../../client/agent/server';
import { Shares } from '../../client/agent/shares';
import { AgentTransfers } from '../../client/agent/transfers';
import { runCli } from '../../client/cli/cli';
import type { CliIo } from '../../client/cli/io';
import { freePort } from '../../local/ports';

/**
 * The local agent's gatekeeping (client/agent/server.ts): who may talk to it (origin allow-list, Host,
 * pairing token) and which files a paired page can reach (only inside the shared folders, no `..`, no
 * symlink out). Requests go through node:http so every header, Host and Origin included, is the test's.
 */
const origin = 'http://127.0.0.1:8080';
let work: string;
let agent: RunningAgent;
let token: string;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

function call(path: string, init: { method?: string; origin?: string | null; token?: string | null; host?: string; body?: string; contentType?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { host: init.host ?? `127.0.0.1:${agent.port}`, ...init.headers };
  if (init.origin !== null) headers.origin = init.origin ?? origin;
  if (init.token !== null) headers[agentTokenHeader] = init.token ?? token;
  if (init.body !== undefined) headers['content-type'] = init.contentType ?? 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: agent.port, path, method: init.method ?? 'GET', headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? (JSON.parse(text) as Answer['body']) : {} }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const upload = (paths: string[], share = 's1') =>
  call('/v1/transfers', { method: 'POST', body: JSON.stringify({ direction: 'upload', endpoint: 'http://127.0.0.1:1', apiKey: 'sk_x', bucket: 'local', share, paths }) });

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'slipstream-agent-'));
  mkdirSync(join(work, 'share', 'docs'), { recursive: true });
  mkdirSync(join(work, 'outside'));
  writeFileSync(join(work, 'share', 'docs', 'a.txt'), 'shared');
  writeFileSync(join(work, 'secret.txt'), 'not shared');
  writeFileSync(join(work, 'outside', 'b.txt'), 'not shared either');
  symlinkSync(join(work, 'secret.txt'), join(work, 'share', 'escape.txt'));
  symlinkSync(join(work, 'outside'), join(work, 'share', 'escape-dir'));
  symlinkSync(join(work, 'share', 'docs', 'a.txt'), join(work, 'share', 'inside-link.txt'));
  token = newPairingToken();
  agent = await listenAgent({
    port: 0,
    allowedOrigins: [origin],
    token,
    shares: await Shares.open([join(work, 'share')]),
    downloadsDir: join(work, 'downloads'),
    transfers: new AgentTransfers({ client: { journal: false } }),
  });
});

afterAll(async () => {
  await agent?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('who may talk to the agent', () => {
  it('answers an allowed origin, saying whether it is paired', async () => {
    const unpaired = await call('/v1/agent', { token: null });
    expect(unpaired.status).toBe(200);
    expect(unpaired.body).toMatchObject({ service: 'slipstream-agent', paired: false, shares: 1 });
    expect(unpaired.headers['access-control-allow-origin']).toBe(origin);
    expect((await call('/v1/agent')).body.paired).toBe(true);
  });

  it('refuses other origins and requests without one, with no CORS headers', async () => {
    for (const other of ['https://evil.example', 'http://127.0.0.1:8081', 'null']) {
      const answer = await call('/v1/shares', { origin: other });
      expect(answer.status, other).toBe(403);
      expect(answer.body.error?.code).toBe('OriginNotAllowed');
      expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    }
    expect((await call('/v1/shares', { origin: null })).body.error?.code).toBe('OriginNotAllowed');
  });

  it('lets only allowed origins through a preflight, Private Network Access included', async () => {
    const ok = await call('/v1/transfers', {
      method: 'OPTIONS',
      token: null,
      headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': `content-type,${agentTokenHeader}`, 'access-control-request-private-network': 'true' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(origin);
    expect(ok.headers['access-control-allow-private-network']).toBe('true');
    expect(String(ok.headers['access-control-allow-headers'])).toContain(agentTokenHeader);
    const refused = await call('/v1/transfers', { method: 'OPTIONS', token: null, origin: 'https://evil.example', headers: { 'access-control-request-method': 'POST' } });
    expect(refused.status).toBe(403);
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses a Host that is not loopback (DNS rebinding)', async () => {
    const answer = await call('/v1/agent', { host: `evil.example:${agent.port}` });
    expect(answer.status).toBe(403);
    expect(answer.body.error?.code).toBe('HostNotAllowed');
    expect((await call('/v1/agent', { host: `localhost:${agent.port}` })).status).toBe(200);
  });

  it('wants the pairing token for everything else', async () => {
    const missing = await call('/v1/shares', { token: null });
    expect([missing.status, missing.body.error?.code]).toEqual([401, 'PairingRequired']);
    // The page can read why: refusals to an allowed origin carry its CORS header.
    expect(missing.headers['access-control-allow-origin']).toBe(origin);
    const wrong = await call('/v1/shares', { token: newPairingToken() });
    expect([wrong.status, wrong.body.error?.code]).toEqual([401, 'PairingRejected']);
    for (const path of ['/v1/transfers', '/v1/shares/s1/entries']) expect((await call(path, { token: 'x' })).status, path).toBe(401);
    expect((await call('/v1/transfers', { method: 'POST', token: null, body: '{}' })).status).toBe(401);
  });
});

describe('which files a paired page can reach', () => {
  it('lists the shared folder without its symbolic links', async () => {
    const shares = await call('/v1/shares');
    expect(shares.body).toEqual({ shares: [{ id: 's1', name: 'share' }] });
    const root = await call('/v1/shares/s1/entries');
    expect((root.body.entries as { name: string; type: string }[]).map((e) => `${e.type}:${e.name}`)).toEqual(['folder:docs']);
    const docs = await call(`/v1/shares/s1/entries?${new URLSearchParams({ path: 'docs' })}`);
    expect(docs.body.entries).toEqual([expect.objectContaining({ name: 'a.txt', path: 'docs/a.txt', type: 'file', sizeBytes: 6 })]);
  });

  it('refuses paths that climb out, are absolute or are malformed', async () => {
    for (const path of ['..', '../outside', 'docs/../..', '/etc', '/', 'docs//a.txt', 'docs\\..\\..', 'docs/./a.txt', 'a\u0000b']) {
      const listed = await call(`/v1/shares/s1/entries?${new URLSearchParams({ path })}`);
      expect([listed.status, listed.body.error?.code], path).toEqual([400, 'InvalidQuery']);
      const sent = await upload([path]);
      expect([sent.status, sent.body.error?.code], path).toEqual([400, 'ValidationError']);
    }
  });

  it('refuses symbolic links that lead outside the share, and follows none out of it', async () => {
    for (const path of ['escape.txt', 'escape-dir', 'escape-dir/b.txt']) {
      const sent = await upload([path]);
      expect([sent.status, sent.body.error?.code], path).toEqual([403, 'OutsideShare']);
      expect(sent.headers['access-control-allow-origin']).toBe(origin);
    }
    const listed = await call(`/v1/shares/s1/entries?${new URLSearchParams({ path: 'escape-dir' })}`);
    expect([listed.status, listed.body.error?.code]).toEqual([403, 'OutsideShare']);
    // One bad path refuses the whole request: nothing starts.
    expect((await upload(['docs/a.txt', 'escape.txt'])).status).toBe(403);
    expect((await call('/v1/transfers')).body.transfers).toEqual([]);
  });

  it('refuses unknown shares and missing files', async () => {
    expect((await upload(['docs/a.txt'], 's9')).body.error?.code).toBe('NoSuchShare');
    expect((await upload(['docs/nothing.txt'])).body.error?.code).toBe('NotFound');
  });

  it('checks the request body: JSON, its shape, its size', async () => {
    expect((await call('/v1/transfers', { method: 'POST', body: 'paths=a', contentType: 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await call('/v1/transfers', { method: 'POST', body: '{"direction":' })).body.error?.code).toBe('MalformedJSON');
    const extra = await call('/v1/transfers', { method: 'POST', body: JSON.stringify({ direction: 'upload', endpoint: 'http://x', apiKey: 'k', bucket: 'local', share: 's1', paths: ['docs'], localPath: '/etc/passwd' }) });
    expect(extra.body.error?.code).toBe('ValidationError');
    const badEndpoint = await call('/v1/transfers', { method: 'POST', body: JSON.stringify({ direction: 'download', endpoint: 'file:///etc', apiKey: 'k', bucket: 'local', key: 'a' }) });
    expect(badEndpoint.body.error?.code).toBe('ValidationError');
    const big = await call('/v1/transfers', { method: 'POST', body: JSON.stringify({ pad: 'x'.repeat(100 * 1024) }) });
    expect(big.status).toBe(413);
  });

  it('starts a transfer of a file inside the share (which then fails here: no API at that endpoint)', async () => {
    const sent = await upload(['inside-link.txt']);
    expect(sent.status).toBe(202);
    expect(sent.body).toMatchObject({ direction: 'upload', name: 'a.txt', bucket: 'local' });
    await expect
      .poll(async () => ((await call(`/v1/transfers/${String(sent.body.id)}`)).body as { status: string }).status)
      .toBe('FAILED');
  });
});

describe('slip agent', () => {
  function io(onOutput: (text: string) => void): CliIo & { out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    let interrupt: (() => void) | undefined;
    return {
      out,
      err,
      stdout: {
        write: (t: string) => {
          out.push(t);
          onOutput(t);
          // The agent is up once it has printed: stop it as Ctrl-C would.
          setTimeout(() => interrupt?.(), 10);
        },
      },
      stderr: { write: (t: string) => err.push(t) },
      env: { SLIPSTREAM_AGENT_ORIGINS: 'https://console.example.com' },
      cwd: work,
      onInterrupt(handler) {
        interrupt = handler;
        return () => (interrupt = undefined);
      },
    };
  }

  it('prints where it listens, what it shares, the origins and the pairing link, and stops on Ctrl-C', async () => {
    const port = await freePort();
    let printed = '';
    const cli = io((t) => (printed += t));
    const code = await runCli(['agent', '--share', 'share', '--downloads', 'dl', '--allow-origin', 'http://localhost:5173', '--port', String(port)], cli);
    expect(code, cli.err.join('')).toBe(0);
    expect(printed).toContain(`Slipstream agent on http://127.0.0.1:${port}`);
    expect(printed).toContain(`share → ${join(work, 'share')}`);
    expect(printed).toContain(join(work, 'dl'));
    expect(printed).toContain('http://127.0.0.1:8080, http://localhost:8080, http://localhost:5173, https://console.example.com');
    expect(printed).toMatch(/open http:\/\/127\.0\.0\.1:8080\/#agent-token=[A-Za-z0-9_-]{22}\n/);
  });

  it('refuses an origin with a path, and a folder that does not exist', async () => {
    const bad = io(() => undefined);
    expect(await runCli(['agent', '--allow-origin', 'https://x.example/console'], bad)).toBe(2);
    expect(bad.err.join('')).toContain('is not an origin');
    const missing = io(() => undefined);
    expect(await runCli(['agent', '--share', 'no-such-folder'], missing)).toBe(2);
    expect(missing.err.join('')).toContain('no such folder');
  });
});
