import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built console (`vite build`, see web/README.md). */
export const defaultConsoleDir = fileURLToPath(new URL('../web/dist/', import.meta.url));
/** Where the page looks for the local agent unless told otherwise (client/agent). */
export const defaultAgentUrl = 'http://127.0.0.1:55002';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};
/** Files the console may ship; bigger ones would be a build mistake, not something to hold in memory. */
const maxFileBytes = 4 * 1024 * 1024;
const securityHeaders = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'content-security-policy': "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
};

interface StaticFile {
  body: Uint8Array<ArrayBuffer>;
  type: string;
}

export interface ConsoleSite {
  /** The built files were found. */
  readonly built: boolean;
  /** A response for the console's own paths, `undefined` for everything else (the API). */
  respond(request: Request): Response | undefined;
}

/**
 * Serves the console from the API's origin, so the page calls the API same-origin: `/` (index.html),
 * `/assets/*` (content-hashed, cached for good) and `/console/config.json` (where the agent listens).
 * Every path has two segments or none, so none can shadow the API's `/{bucket}` routes. The files are
 * read once at start into memory (the bundle is small): no request ever touches the filesystem.
 */
export function loadConsole(dir: string, settings: { agentUrl: string }): ConsoleSite {
  const files = new Map<string, StaticFile>();
  if (existsSync(join(dir, 'index.html'))) {
    for (const path of walk(dir)) {
      const type = contentTypes[extname(path)];
      if (!type || statSync(path).size > maxFileBytes) continue;
      files.set(`/${relative(dir, path).split(sep).join('/')}`, { body: new Uint8Array(readFileSync(path)), type });
    }
  }
  const config = JSON.stringify({ agentUrl: settings.agentUrl });
  const built = files.has('/index.html');
  return {
    built,
    respond(request) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
      const path = new URL(request.url).pathname;
      if (path === '/console/config.json') {
        return new Response(config, { headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...securityHeaders } });
      }
      if (path === '/') {
        const index = files.get('/index.html');
        if (!index) {
          const hint = '<!doctype html><title>Slipstream</title><p>The console is not built. Run <code>npm run build:web</code> (or <code>npm start</code>, which builds it) and reload.</p>';
          return new Response(hint, { status: 503, headers: { 'content-type': 'text/html; charset=utf-8', ...securityHeaders } });
        }
        return fileResponse(index, request, 'no-cache');
      }
      if (path.startsWith('/assets/')) {
        const file = files.get(path);
        if (file) return fileResponse(file, request, 'public, max-age=31536000, immutable');
        return new Response('not found', { status: 404, headers: { 'content-type': 'text/plain', ...securityHeaders } });
      }
      return undefined;
    },
  };
}

function fileResponse(file: StaticFile, request: Request, cacheControl: string): Response {
  const headers = { 'content-type': file.type, 'cache-control': cacheControl, 'content-length': String(file.body.byteLength), ...securityHeaders };
  return new Response(request.method === 'HEAD' ? null : file.body, { headers });
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}
