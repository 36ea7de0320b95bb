import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { requireConfig, resolveConfig } from '../../client/sdk/config';
import { SlipstreamConfigError } from '../../client/sdk/errors';

let root: string;
let home: string;
let project: string;

/** A local stack's data dir above `project/deep/er`, the way `npm start` writes it. */
function writeLocalStack(dir: string, apiUrl = 'http://127.0.0.1:8080', apiKey = 'sk_local') {
  mkdirSync(join(dir, '.slipstream'), { recursive: true });
  writeFileSync(
    join(dir, '.slipstream', 'credentials.json'),
    JSON.stringify({ apiUrl, apiKey, keyId: 'k', bucket: 'local', s3Endpoint: 'http://127.0.0.1:4568', region: 'us-east-1' }),
  );
}

function writeConfigFile(path: string, body: unknown) {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, typeof body === 'string' ? body : JSON.stringify(body));
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'slip-config-'));
  home = join(root, 'home');
  project = join(root, 'project', 'deep', 'er');
  mkdirSync(home, { recursive: true });
  mkdirSync(project, { recursive: true });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const defaultConfigPath = () => join(home, '.config', 'slipstream', 'config.json');

describe('config resolution order', () => {
  it('options beat env, env beats the config file, the config file beats the local stack', () => {
    writeLocalStack(join(root, 'project'));
    writeConfigFile(defaultConfigPath(), { endpoint: 'https://file.example', apiKey: 'sk_file' });
    const env = { SLIPSTREAM_ENDPOINT: 'https://env.example', SLIPSTREAM_API_KEY: 'sk_env' };

    const all = resolveConfig({ endpoint: 'https://flag.example/', apiKey: 'sk_flag', env, cwd: project, homeDir: home });
    expect(all).toMatchObject({ endpoint: 'https://flag.example', apiKey: 'sk_flag' });
    expect(all.sources.endpoint).toEqual({ kind: 'option', detail: '--endpoint' });

    const fromEnv = resolveConfig({ env, cwd: project, homeDir: home });
    expect(fromEnv).toMatchObject({ endpoint: 'https://env.example', apiKey: 'sk_env' });
    expect(fromEnv.sources.apiKey.kind).toBe('env');

    const fromFile = resolveConfig({ env: {}, cwd: project, homeDir: home });
    expect(fromFile).toMatchObject({ endpoint: 'https://file.example', apiKey: 'sk_file' });
    expect(fromFile.sources.endpoint).toEqual({ kind: 'config-file', detail: defaultConfigPath() });

    rmSync(defaultConfigPath());
    const fromStack = resolveConfig({ env: {}, cwd: project, homeDir: home });
    expect(fromStack).toMatchObject({ endpoint: 'http://127.0.0.1:8080', apiKey: 'sk_local', defaultBucket: 'local' });
    expect(fromStack.sources.apiKey).toEqual({ kind: 'local-stack', detail: join(root, 'project', '.slipstream', 'credentials.json') });
  });

  it('takes each value from the first source that sets it', () => {
    writeConfigFile(defaultConfigPath(), { apiKey: 'sk_file' });
    const config = resolveConfig({ env: { SLIPSTREAM_ENDPOINT: 'http://env.example:8080' }, cwd: project, homeDir: home });
    expect(config).toMatchObject({ endpoint: 'http://env.example:8080', apiKey: 'sk_file' });
    expect([config.sources.endpoint.kind, config.sources.apiKey.kind]).toEqual(['env', 'config-file']);
  });

  it('treats empty environment variables as unset', () => {
    writeConfigFile(defaultConfigPath(), { endpoint: 'https://file.example', apiKey: 'sk_file' });
    const config = resolveConfig({ env: { SLIPSTREAM_ENDPOINT: '', SLIPSTREAM_API_KEY: '  ' }, cwd: project, homeDir: home });
    expect(config.apiKey).toBe('sk_file');
  });

  it('reads $SLIPSTREAM_CONFIG instead of the default file, and XDG_CONFIG_HOME moves the default', () => {
    const explicit = join(root, 'elsewhere.json');
    writeConfigFile(explicit, { endpoint: 'https://explicit.example', apiKey: 'sk_explicit' });
    writeConfigFile(defaultConfigPath(), { endpoint: 'https://file.example', apiKey: 'sk_file' });
    expect(resolveConfig({ env: { SLIPSTREAM_CONFIG: explicit }, cwd: project, homeDir: home }).apiKey).toBe('sk_explicit');
    const xdg = join(root, 'xdg');
    writeConfigFile(join(xdg, 'slipstream', 'config.json'), { endpoint: 'https://xdg.example', apiKey: 'sk_xdg' });
    expect(resolveConfig({ env: { XDG_CONFIG_HOME: xdg }, cwd: project, homeDir: home }).apiKey).toBe('sk_xdg');
  });

  it('names the file when the config file is invalid or missing', () => {
    const path = join(root, 'bad.json');
    writeConfigFile(path, { endpoint: 'ftp://x', apiKey: 'sk', extra: 1 });
    expect(() => resolveConfig({ env: { SLIPSTREAM_CONFIG: path }, cwd: project, homeDir: home })).toThrow(SlipstreamConfigError);
    expect(() => resolveConfig({ env: { SLIPSTREAM_CONFIG: path }, cwd: project, homeDir: home })).toThrow(path);
    writeConfigFile(path, '{not json');
    expect(() => resolveConfig({ env: { SLIPSTREAM_CONFIG: path }, cwd: project, homeDir: home })).toThrow(/bad\.json is not readable JSON/);
    expect(() => resolveConfig({ env: { SLIPSTREAM_CONFIG: join(root, 'none.json') }, cwd: project, homeDir: home })).toThrow(/none\.json.*does not exist/);
  });

  it('never pairs the local stack key with an endpoint from elsewhere', () => {
    writeLocalStack(join(root, 'project'), 'http://127.0.0.1:8080', 'sk_local');
    const other = resolveConfig({ endpoint: 'https://prod.example', env: {}, cwd: project, homeDir: home });
    expect(other.apiKey).toBeUndefined();
    expect(() => requireConfig(other)).toThrow(/no API key configured/);
    const same = resolveConfig({ endpoint: 'http://127.0.0.1:8080/', env: {}, cwd: project, homeDir: home });
    expect(same.apiKey).toBe('sk_local');
  });

  it('reports what is missing and how to set it', () => {
    const none = resolveConfig({ env: {}, cwd: project, homeDir: home });
    expect(none.sources.endpoint.kind).toBe('unset');
    expect(() => requireConfig(none)).toThrow(/no endpoint and no API key configured: set the endpoint/);
    expect(() => resolveConfig({ endpoint: 'not a url', env: {}, cwd: project, homeDir: home })).toThrow(/not a URL/);
  });
});
