import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { ServiceError } from '../core/errors';
import type { AppDeps } from './deps';
import type { AppEnv } from './env';
import { errorResponse, onError } from './errors';

/**
 * The control-plane API, runtime-agnostic: Lambda (`lambda/`, one route group per function), Node
 * (`local/`, every group: `routes/index.ts`) and tests (`app.request()`) all serve this. `deps` may be
 * a function so a Lambda reads its configuration on first use.
 */
export function createApp(deps: AppDeps | (() => AppDeps), routes: readonly Hono<AppEnv>[]): Hono<AppEnv> {
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
  for (const group of routes) app.route('/', group);
  app.notFound((c) => {
    // A companion URL carries a grant: never echo it.
    const path = c.req.path.replace(/^\/companion\/[^/]+/, '/companion/<grant>').slice(0, 200);
    return errorResponse(c, new ServiceError('NotFound', `no route for ${c.req.method} ${path}`));
  });
  app.onError(onError);
  return app;
}
