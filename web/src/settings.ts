import { z } from 'zod';
import { transportSchema } from '../../contracts';
import type { Transport } from './transfers';

/** `console/config.json`, next to the page: where the API and the agent are. */
const consoleConfigSchema = z.object({
  /** Absent: the API is where the page is (the local stack serves both). */
  apiUrl: z.url({ protocol: /^https?$/ }).optional(),
  agentUrl: z.url({ protocol: /^http$/ }).optional(),
});

export interface ConsoleConfig {
  apiUrl: string;
  agentUrl: string;
}

const defaultAgentUrl = 'http://127.0.0.1:55002';

export async function loadConfig(): Promise<ConsoleConfig> {
  const here = new URL('.', document.baseURI).href.replace(/\/$/, '');
  const response = await fetch(new URL('console/config.json', document.baseURI), { cache: 'no-store' }).catch(() => undefined);
  const parsed = consoleConfigSchema.safeParse(response?.ok ? await response.json().catch(() => undefined) : {});
  const config = parsed.success ? parsed.data : {};
  return { apiUrl: (config.apiUrl ?? here).replace(/\/+$/, ''), agentUrl: (config.agentUrl ?? defaultAgentUrl).replace(/\/+$/, '') };
}

// The API key and the agent's pairing token live as long as the tab: sessionStorage, never localStorage.
const apiKeyItem = 'slipstream.apiKey';
const agentTokenItem = 'slipstream.agentToken';
const bucketItem = 'slipstream.bucket';
/** Kept across visits only when the user ticks "Remember my browser preferences". */
const browserPreferencesItem = 'slipstream.browserPreferences';

const browserPreferencesSchema = z.object({ transport: transportSchema });

function read(storage: Storage, item: string): string | null {
  try {
    return storage.getItem(item);
  } catch {
    return null; // storage disabled: nothing is kept
  }
}

function write(storage: Storage, item: string, value: string | null): void {
  try {
    if (value === null) storage.removeItem(item);
    else storage.setItem(item, value);
  } catch {
    // storage disabled or full: the session works, it is just not kept
  }
}

export const session = {
  apiKey: () => read(sessionStorage, apiKeyItem),
  setApiKey: (key: string | null) => write(sessionStorage, apiKeyItem, key),
  agentToken: () => read(sessionStorage, agentTokenItem),
  setAgentToken: (token: string | null) => write(sessionStorage, agentTokenItem, token),
  bucket: () => read(sessionStorage, bucketItem),
  setBucket: (bucket: string) => write(sessionStorage, bucketItem, bucket),
};

/** The remembered transport, or null when the user has not asked to remember one. */
export function rememberedTransport(): Transport | null {
  const raw = read(localStorage, browserPreferencesItem);
  if (raw === null) return null;
  try {
    const parsed = browserPreferencesSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data.transport : null;
  } catch {
    return null;
  }
}

export function rememberTransport(transport: Transport | null): void {
  write(localStorage, browserPreferencesItem, transport === null ? null : JSON.stringify({ transport }));
}

/** A pairing link (`…/#agent-token=…`, printed by slip agent) is taken once and removed from the address bar. */
export function takeTokenFromLocation(): string | null {
  const match = /(?:^#|&)agent-token=([A-Za-z0-9_-]{16,64})(?:&|$)/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return match[1]!;
}
