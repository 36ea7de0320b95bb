import { EnvHttpProxyAgent, fetch as undiciFetch } from 'undici';

/** Proxy settings as users set them for curl and the AWS CLI; lower case wins, as in curl. */
export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

export function proxySettingsFromEnv(env: NodeJS.ProcessEnv): ProxySettings {
  const pick = (name: string) => env[name.toLowerCase()] || env[name.toUpperCase()] || undefined;
  const settings: ProxySettings = {};
  const httpProxy = pick('http_proxy');
  const httpsProxy = pick('https_proxy') ?? httpProxy;
  const noProxy = pick('no_proxy');
  if (httpProxy) settings.httpProxy = httpProxy;
  if (httpsProxy) settings.httpsProxy = httpsProxy;
  if (noProxy) settings.noProxy = noProxy;
  return settings;
}

export const usesProxy = (settings: ProxySettings) => settings.httpProxy !== undefined || settings.httpsProxy !== undefined;

/** The proxy a request to `url` goes through, or undefined for a direct connection (for `slip doctor`). */
export function proxyFor(settings: ProxySettings, url: string): string | undefined {
  const target = new URL(url);
  const proxy = target.protocol === 'https:' ? settings.httpsProxy : settings.httpProxy;
  if (!proxy) return undefined;
  const host = target.hostname.toLowerCase();
  const port = target.port;
  for (const raw of (settings.noProxy ?? '').split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return undefined;
    const [entryHost, entryPort] = entry.startsWith('[') ? [entry, undefined] : entry.split(':');
    if (entryPort && entryPort !== port) continue;
    const bare = entryHost!.replace(/^\*?\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return undefined;
  }
  return proxy;
}

/**
 * `fetch` for everything the SDK sends over HTTP (API calls, presigned S3 URLs): through the proxy the
 * environment names (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), direct otherwise. Node's built-in fetch ignores
 * those variables, so this uses undici's with its environment-aware agent.
 */
export function createHttpFetch(settings: ProxySettings): typeof fetch {
  if (!usesProxy(settings)) return fetch;
  const dispatcher = new EnvHttpProxyAgent({
    ...(settings.httpProxy ? { httpProxy: settings.httpProxy } : {}),
    ...(settings.httpsProxy ? { httpsProxy: settings.httpsProxy } : {}),
    ...(settings.noProxy ? { noProxy: settings.noProxy } : {}),
  });
  const proxied = (input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher });
  return proxied as unknown as typeof fetch;
}
