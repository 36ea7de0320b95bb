import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { ServiceError } from '../core/errors';
import type { AppDeps } from './deps';
import type { AppEnv } from './env';
import { errorResponse, onError } from './errors';
import { bucketRoutes } from './routes/bucket';
import { companionRoutes } from './routes/companion';
import { fallbackRoutes } from './routes/fallback';
import { fileRoutes } from './routes/files';
import { healthRoutes } from './routes/health';
import { keyRoutes } from './routes/keys';
import { preferencesRoutes } from './routes/preferences';
import { transferRoutes } from './routes/transfers';

/** Route groups; each is one Lambda function in AWS so each gets only the permissions it needs. */
export const routeGroups = {
  bucket: [healthRoutes, bucketRoutes],
  files: [fileRoutes],
  preferences: [preferencesRoutes],
  fallback: [fallbackRoutes, companionRoutes],
  transfers: [transferRoutes],
  keys: [keyRoutes],
} as const;
export type RouteGroup = keyof typeof routeGroups;

/** `/{bucket}` would shadow the fixed paths, so it is mounted last. */
const mountOrder: readonly RouteGroup[] = ['files', 'preferences', 'fallback', 'transfers', 'keys', 'bucket'];

/**
 * The whole control-plane API, runtime-agnostic: Lambda (`lambda/`), Node (`local/`) and tests
 * (`app.request()`) all serve this. `deps` may be a function so a Lambda reads its configuration on first use.
 */
export function createApp(deps: AppDeps | (() => AppDeps), groups: readonly RouteGroup[] = mountOrder): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  // Browsers call the API from the console's origin (and Uppy from any page). Any origin is safe here:
  // credentials travel in the Authorization header or a sealed grant in the URL, never in cookies.
  app.use(
    '*',
    cors({
      origin: '*',
      allowMethods: ['GET', 'PUT', 'PATCH', 'POST', 'DELETE'],
      allowHeaders: ['authorization', 'content-type', 'accept'],
      exposeHeaders: ['retry-after', 'www-authenticate'],
      maxAge: 600,
    }),
  );
  app.use('*', async (c, next) => {
    c.set('deps', typeof deps === 'function' ? deps() : deps);
    await next();
  });
  for (const group of mountOrder.filter((g) => groups.includes(g))) {
    for (const routes of routeGroups[group]) app.route('/', routes as unknown as Hono<AppEnv>);
  }
  app.notFound((c) => {
    // A companion URL carries a grant: never echo it.
    const path = c.req.path.replace(/^\/companion\/[^/]+/, '/companion/<grant>').slice(0, 200);
    return errorResponse(c, new ServiceError('NotFound', `no route for ${c.req.method} ${path}`));
  });
  app.onError(onError);
  return app;
}
