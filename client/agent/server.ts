import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import { SlipstreamInputError } from '../sdk/errors';
import {
  agentApiVersion,
  agentTokenHeader,
  agentTransferRequestSchema,
  shareEntriesQuerySchema,
  type AgentInfo,
  type AgentTransferRequest,
} from './schemas';
import { ShareAccessError, type Shares } from './shares';
import { AgentBusyError, ensureFolder, type AgentJob, type AgentTransfers } from './transfers';

const maxBodyBytes = 64 * 1024;
const allowedHeaders = ['content-type', agentTokenHeader];
const loopbackHosts = ['127.0.0.1', 'localhost', '[::1]'];

export interface AgentAppOptions {
  /** Origins whose pages may use the agent, e.g. `http://127.0.0.1:8080` (exact `scheme://host[:port]`). */
  allowedOrigins: readonly string[];
  /** The pairing token the page must send in `x-slipstream-agent-token`. */
  token: string;
  shares: Shares;
  /** Where high-speed downloads land; made on first use. */
  downloadsDir: string;
  transfers: AgentTransfers;
  /** The port the agent listens on: a request whose Host names another is refused (DNS rebinding). */
  port: number;
}

interface AgentEnv {
  Variables: { paired: boolean };
}

class AgentError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `scheme://host[:port]` exactly as a browser sends it in `Origin`; anything else is a usage error. */
export function normalizeOrigin(origin: string): string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new SlipstreamInputError(`"${origin}" is not an origin such as http://127.0.0.1:8080`);
  }
  if (!/^https?:$/.test(url.protocol) || url.origin !== origin.replace(/\/$/, '')) {
    throw new SlipstreamInputError(`"${origin}" is not an origin (scheme://host[:port], no path), e.g. https://console.example.com`);
  }
  return url.origin;
}

/** A fresh pairing token: 128 random bits, URL-safe. */
export const newPairingToken = () => randomBytes(16).toString('base64url');

function sameToken(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  // Equal-length digests: the comparison takes the same time whatever the guess.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

const errorJson = (c: Context, error: AgentError) => c.json({ error: { code: error.code, message: error.message } }, error.status);

/**
 * The agent's HTTP API (schemas in `./schemas.ts`). In front of every route:
 * 1. `Host` must be a loopback name with the agent's port: a DNS-rebinding page (evil.example resolving
 *    to 127.0.0.1) sends its own host name and is refused.
 * 2. `Origin` must be on the allow-list, or the request is refused (403) with no CORS headers, so a page
 *    elsewhere can neither read an answer nor get a preflight through. Requests without `Origin` (not
 *    from a browser page) are refused too: the agent only works for the console.
 * 3. The pairing token, on every route but `GET /v1/agent` (which only says whether the agent runs).
 */
export function createAgentApp(options: AgentAppOptions): Hono<AgentEnv> {
  const origins = new Set(options.allowedOrigins.map(normalizeOrigin));
  const app = new Hono<AgentEnv>();

  const guard: MiddlewareHandler<AgentEnv> = async (c, next) => {
    const host = (c.req.header('host') ?? '').toLowerCase();
    if (!loopbackHosts.some((h) => host === `${h}:${options.port}`)) {
      return errorJson(c, new AgentError(403, 'HostNotAllowed', `the agent answers only to http://127.0.0.1:${options.port}, not to host "${host.slice(0, 100)}"`));
    }
    const origin = c.req.header('origin');
    if (origin === undefined || !origins.has(origin)) {
      return errorJson(
        c,
        new AgentError(403, 'OriginNotAllowed', `origin ${origin?.slice(0, 200) ?? '(none)'} may not use this agent; start it with --allow-origin <origin> to allow a console there`),
      );
    }
    c.header('access-control-allow-origin', origin);
    c.header('vary', 'origin');
    if (c.req.method === 'OPTIONS') {
      // Chrome asks before a public page may reach a loopback address (Private Network Access).
      if (c.req.header('access-control-request-private-network') === 'true') c.header('access-control-allow-private-network', 'true');
      c.header('access-control-allow-methods', 'GET, POST');
      c.header('access-control-allow-headers', allowedHeaders.join(', '));
      c.header('access-control-max-age', '600');
      return c.body(null, 204);
    }
    const paired = sameToken(c.req.header(agentTokenHeader), options.token);
    if (!paired && !(c.req.method === 'GET' && c.req.path === '/v1/agent')) {
      const given = c.req.header(agentTokenHeader) !== undefined;
      return errorJson(
        c,
        given
          ? new AgentError(401, 'PairingRejected', 'the pairing token is not this agent\'s: pair again with the token slip agent printed')
          : new AgentError(401, 'PairingRequired', 'pair the console with the agent first: paste the token slip agent printed'),
      );
    }
    c.set('paired', paired);
    return next();
  };

  const readBody = async (c: Context): Promise<AgentTransferRequest> => {
    if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('application/json')) {
      throw new AgentError(415, 'UnsupportedMediaType', 'send JSON (content-type: application/json)');
    }
    let json: unknown;
    try {
      json = JSON.parse(await c.req.text());
    } catch {
      throw new AgentError(400, 'MalformedJSON', 'the body is not valid JSON');
    }
    return parse(agentTransferRequestSchema, json, 'ValidationError');
  };

  const jobFor = async (request: AgentTransferRequest): Promise<AgentJob> => {
    const access = { bucket: request.bucket, endpoint: request.endpoint, apiKey: request.apiKey };
    if (request.direction === 'upload') {
      // Every path is resolved (and refused if it escapes its share) before anything starts.
      const localPaths = await Promise.all(request.paths.map((p) => options.shares.resolve(request.share, p)));
      const destination = `s3://${request.bucket}/${request.prefix.replace(/\/$/, '')}`;
      const name = localPaths.length === 1 ? basename(localPaths[0]!) : `${localPaths.length} items`;
      return { direction: 'upload', name, ...access, start: (client) => client.upload(localPaths, destination) };
    }
    const name = basename(request.key.replace(/\/$/, '')) + (request.key.endsWith('/') ? '/' : '');
    const dir = options.downloadsDir;
    return { direction: 'download', name, ...access, start: async (client) => client.download(`s3://${request.bucket}/${request.key}`, await ensureFolder(dir)) };
  };

  app.use('*', guard);
  app.use('*', bodyLimit({ maxSize: maxBodyBytes, onError: (c) => errorJson(c, new AgentError(413, 'PayloadTooLarge', `bodies are limited to ${maxBodyBytes} bytes`)) }));

  app.get('/v1/agent', (c) => {
    const info: AgentInfo = {
      service: 'slipstream-agent',
      apiVersion: agentApiVersion,
      paired: c.get('paired'),
      shares: options.shares.count,
    };
    return c.json(info);
  });
  app.get('/v1/shares', (c) => c.json({ shares: options.shares.list() }));
  app.get('/v1/shares/:id/entries', async (c) => {
    const query = parse(shareEntriesQuerySchema, c.req.query(), 'InvalidQuery');
    return c.json(await options.shares.entries(c.req.param('id'), query.path));
  });
  app.get('/v1/transfers', (c) => c.json({ transfers: options.transfers.list() }));
  app.post('/v1/transfers', async (c) => {
    const job = await jobFor(await readBody(c));
    return c.json(options.transfers.add(job), 202);
  });
  app.get('/v1/transfers/:id', (c) => c.json(found(options.transfers.get(c.req.param('id')))));
  app.post('/v1/transfers/:id/pause', (c) => c.json(found(options.transfers.pause(c.req.param('id')))));
  app.post('/v1/transfers/:id/resume', (c) => c.json(found(options.transfers.resume(c.req.param('id')))));
  app.post('/v1/transfers/:id/cancel', async (c) => c.json(found(await options.transfers.cancel(c.req.param('id')))));

  app.notFound((c) => errorJson(c, new AgentError(404, 'NotFound', `no route for ${c.req.method} ${c.req.path.slice(0, 200)}`)));
  app.onError((error, c) => {
    if (error instanceof AgentError) return errorJson(c, error);
    if (error instanceof ShareAccessError) return errorJson(c, new AgentError(error.status, error.code, error.message));
    if (error instanceof AgentBusyError) return errorJson(c, new AgentError(429, 'TooManyTransfers', error.message));
    console.error(`slip agent: ${error.stack ?? String(error)}`);
    return errorJson(c, new AgentError(500, 'InternalError', 'the agent failed; see its terminal'));
  });
  return app;
}

function parse<S extends z.ZodType>(schema: S, value: unknown, code: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new AgentError(400, code, parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

function found<T>(value: T | undefined): T {
  if (value === undefined) throw new AgentError(404, 'NoSuchTransfer', 'the agent has no such transfer (it keeps the last 200 finished ones)');
  return value;
}

export interface RunningAgent {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** Listens on loopback only: the agent reads local files and must never be reachable from the network. */
export async function listenAgent(options: Omit<AgentAppOptions, 'port'> & { port: number }): Promise<RunningAgent> {
  let port = options.port;
  // Port 0 (tests) picks a free one; the Host check then needs the real port, so the app is built after.
  let server: ServerType | undefined;
  let app: Hono<AgentEnv> | undefined;
  await new Promise<void>((ready, fail) => {
    server = serve({ fetch: (request: Request) => app!.fetch(request), hostname: '127.0.0.1', port }, () => ready());
    server.once('error', fail);
  });
  port = (server!.address() as AddressInfo).port;
  app = createAgentApp({ ...options, port });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: async () => {
      options.transfers.close();
      await new Promise<void>((done) => {
        server!.close(() => done());
        // Idle keep-alive connections from the browser would otherwise hold close() open.
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    },
  };
}
