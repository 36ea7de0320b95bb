import { Hono } from 'hono';
import { createApiKeyRequestSchema } from '../../contracts';
import { ServiceError } from '../../core/errors';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { limitBody, readJson } from '../middleware/body';

const keyIdPattern = /^[0-9a-f]{16}$/;

function keyId(id: string): string {
  if (!keyIdPattern.test(id)) throw new ServiceError('NotFound', `no API key ${id.slice(0, 40)}`);
  return id;
}

/** API key management: only an admin key scoped to all buckets (`*`) may use it. */
export const keyRoutes = new Hono<AppEnv>()
  // `/v1/keys/*` covers `/v1/keys` too.
  .use('/v1/keys/*', authenticate(), limitBody(16 * 1024))
  .post('/v1/keys', async (c) => {
    requireScope(c.get('principal'), undefined, 'admin');
    const body = await readJson(c, createApiKeyRequestSchema);
    const deps = c.get('deps');
    const now = deps.now();
    const created = await deps.keys.createApiKey({
      name: body.name,
      buckets: body.buckets,
      actions: body.actions,
      now,
      ...(body.expiresInSeconds ? { expiresAt: new Date(now.getTime() + body.expiresInSeconds * 1000) } : {}),
    });
    return c.json(created, 201);
  })
  .get('/v1/keys', async (c) => {
    requireScope(c.get('principal'), undefined, 'admin');
    return c.json({ keys: await c.get('deps').keys.listApiKeys() });
  })
  .get('/v1/keys/:id', async (c) => {
    requireScope(c.get('principal'), undefined, 'admin');
    const key = await c.get('deps').keys.getApiKey(keyId(c.req.param('id')));
    if (!key) throw new ServiceError('NotFound', `no API key ${c.req.param('id')}`);
    return c.json(key);
  })
  .delete('/v1/keys/:id', async (c) => {
    requireScope(c.get('principal'), undefined, 'admin');
    const deps = c.get('deps');
    const id = keyId(c.req.param('id'));
    if (!(await deps.keys.revokeApiKey(id, deps.now()))) throw new ServiceError('NotFound', `no API key ${id}`);
    return c.json(await deps.keys.getApiKey(id));
  });
