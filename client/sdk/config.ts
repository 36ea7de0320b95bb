import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { SlipstreamConfigError } from './errors';

/** Where a setting came from, in the order they are tried. */
export type ConfigSourceKind = 'option' | 'env' | 'config-file' | 'local-stack' | 'unset';

export interface ConfigSource {
  kind: ConfigSourceKind;
  /** Human detail: the flag, variable or file. */
  detail: string;
}

export interface ResolvedConfig {
  endpoint: string | undefined;
  apiKey: string | undefined;
  /** The local stack's default bucket, when its credentials.json was found. */
  defaultBucket: string | undefined;
  sources: { endpoint: ConfigSource; apiKey: ConfigSource };
  /** Every file looked at, found or not (for `slip doctor`). */
  files: { path: string; found: boolean; role: 'config-file' | 'local-stack' }[];
}

export interface ConfigInputs {
  endpoint?: string | undefined;
  apiKey?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  homeDir?: string;
}

export const configFileSchema = z.strictObject({
  endpoint: z.url({ protocol: /^https?$/ }).optional(),
  apiKey: z.string().min(1).optional(),
});

/** The subset of the local stack's `.slipstream/credentials.json` the client reads. */
const localCredentialsSchema = z.object({ apiUrl: z.string(), apiKey: z.string().min(1), bucket: z.string().optional() });

/** Walk-up depth bound: deep enough for any real tree, finite on a pathological one. */
const maxWalkUpLevels = 64;

const nonEmpty = (value: string | undefined) => (value === undefined || value.trim() === '' ? undefined : value.trim());

export function configFilePath(env: NodeJS.ProcessEnv, homeDir: string): { path: string; explicit: boolean } {
  const explicit = nonEmpty(env.SLIPSTREAM_CONFIG);
  if (explicit) return { path: resolve(explicit), explicit: true };
  const base = nonEmpty(env.XDG_CONFIG_HOME) ?? join(homeDir, '.config');
  return { path: join(base, 'slipstream', 'config.json'), explicit: false };
}

export function readConfigFile(path: string): z.infer<typeof configFileSchema> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new SlipstreamConfigError(`config file ${path} is not readable JSON: ${(error as Error).message}`);
  }
  const parsed = configFileSchema.safeParse(json);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new SlipstreamConfigError(`config file ${path} is invalid (${why}); expected {"endpoint": "https://…", "apiKey": "sk_…"}`);
  }
  return parsed.data;
}

/** `.slipstream/credentials.json` in `cwd` or the nearest parent that has one. */
export function findLocalCredentials(cwd: string): string | undefined {
  let dir = resolve(cwd);
  for (let level = 0; level < maxWalkUpLevels; level++) {
    const candidate = join(dir, '.slipstream', 'credentials.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return undefined;
}

function readLocalCredentials(path: string): z.infer<typeof localCredentialsSchema> {
  try {
    const parsed = localCredentialsSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (parsed.success) return parsed.data;
    throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  } catch (error) {
    throw new SlipstreamConfigError(`local stack credentials ${path} are not usable: ${(error as Error).message}`);
  }
}

export function normalizeEndpoint(endpoint: string, source: ConfigSource): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new SlipstreamConfigError(`endpoint "${endpoint}" (from ${source.detail}) is not a URL; expected e.g. http://127.0.0.1:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SlipstreamConfigError(`endpoint "${endpoint}" (from ${source.detail}) must be an http:// or https:// URL`);
  }
  return url.href.replace(/\/+$/, '');
}

/**
 * Endpoint and API key, each from the first place that sets it: options (flags), environment
 * (`SLIPSTREAM_ENDPOINT`, `SLIPSTREAM_API_KEY`), the config file (`$SLIPSTREAM_CONFIG` or
 * `~/.config/slipstream/config.json`), and last the local stack's `.slipstream/credentials.json`
 * found by walking up from `cwd`. The local stack's key is only used together with its own endpoint,
 * so an admin key made for this machine is never sent to an endpoint named elsewhere.
 */
export function resolveConfig(inputs: ConfigInputs = {}): ResolvedConfig {
  const env = inputs.env ?? process.env;
  const homeDir = inputs.homeDir ?? homedir();
  const files: ResolvedConfig['files'] = [];
  let endpoint: { value: string; source: ConfigSource } | undefined;
  let apiKey: { value: string; source: ConfigSource } | undefined;

  const fromOption = { endpoint: nonEmpty(inputs.endpoint), apiKey: nonEmpty(inputs.apiKey) };
  if (fromOption.endpoint) endpoint = { value: fromOption.endpoint, source: { kind: 'option', detail: '--endpoint' } };
  if (fromOption.apiKey) apiKey = { value: fromOption.apiKey, source: { kind: 'option', detail: '--api-key' } };

  const envEndpoint = nonEmpty(env.SLIPSTREAM_ENDPOINT);
  const envKey = nonEmpty(env.SLIPSTREAM_API_KEY);
  if (!endpoint && envEndpoint) endpoint = { value: envEndpoint, source: { kind: 'env', detail: 'SLIPSTREAM_ENDPOINT' } };
  if (!apiKey && envKey) apiKey = { value: envKey, source: { kind: 'env', detail: 'SLIPSTREAM_API_KEY' } };

  const configFile = configFilePath(env, homeDir);
  const configExists = existsSync(configFile.path);
  files.push({ path: configFile.path, found: configExists, role: 'config-file' });
  if (configFile.explicit && !configExists) {
    throw new SlipstreamConfigError(`config file ${configFile.path} (from SLIPSTREAM_CONFIG) does not exist`);
  }
  if (configExists && (!endpoint || !apiKey)) {
    const file = readConfigFile(configFile.path);
    const source: ConfigSource = { kind: 'config-file', detail: configFile.path };
    if (!endpoint && file.endpoint) endpoint = { value: file.endpoint, source };
    if (!apiKey && file.apiKey) apiKey = { value: file.apiKey, source };
  }

  let defaultBucket: string | undefined;
  const credentialsPath = findLocalCredentials(inputs.cwd ?? process.cwd());
  if (credentialsPath) {
    files.push({ path: credentialsPath, found: true, role: 'local-stack' });
    const local = readLocalCredentials(credentialsPath);
    const source: ConfigSource = { kind: 'local-stack', detail: credentialsPath };
    const localEndpoint = normalizeEndpoint(local.apiUrl, source);
    if (!endpoint) endpoint = { value: localEndpoint, source };
    const sameEndpoint = normalizeEndpoint(endpoint.value, endpoint.source) === localEndpoint;
    if (sameEndpoint) {
      if (!apiKey) apiKey = { value: local.apiKey, source };
      defaultBucket = local.bucket;
    }
  }

  const unset: ConfigSource = { kind: 'unset', detail: 'not set' };
  return {
    endpoint: endpoint ? normalizeEndpoint(endpoint.value, endpoint.source) : undefined,
    apiKey: apiKey?.value,
    defaultBucket,
    sources: { endpoint: endpoint?.source ?? unset, apiKey: apiKey?.source ?? unset },
    files,
  };
}

export const configHelp =
  'set the endpoint and API key with --endpoint/--api-key, SLIPSTREAM_ENDPOINT/SLIPSTREAM_API_KEY, ' +
  'or ~/.config/slipstream/config.json ({"endpoint": "…", "apiKey": "…"}), or run inside a directory of a local stack (npm start)';

/** The resolved config with both values present, or a config error saying how to set them. */
export function requireConfig(config: ResolvedConfig): ResolvedConfig & { endpoint: string; apiKey: string } {
  const missing = [config.endpoint ? undefined : 'endpoint', config.apiKey ? undefined : 'API key'].filter(Boolean);
  if (missing.length > 0) throw new SlipstreamConfigError(`no ${missing.join(' and no ')} configured: ${configHelp}`);
  return config as ResolvedConfig & { endpoint: string; apiKey: string };
}
