import { bucketRoutes } from './bucket';
import { companionRoutes } from './companion';
import { continuationRoutes } from './continuation';
import { fallbackRoutes } from './fallback';
import { fileRoutes } from './files';
import { healthRoutes } from './health';
import { keyRoutes } from './keys';
import { objectRoutes } from './objects';
import { preferencesRoutes } from './preferences';
import { transferRoutes } from './transfers';

/**
 * Every route group, for one process serving the whole API. `/{bucket}` would shadow the fixed paths, so
 * it is last; the continuation routes come before `transferRoutes`, whose `/v1/transfers/*` middleware
 * would otherwise run for them too.
 */
export const allRoutes = [
  fileRoutes,
  preferencesRoutes,
  objectRoutes,
  fallbackRoutes,
  companionRoutes,
  continuationRoutes,
  transferRoutes,
  keyRoutes,
  healthRoutes,
  bucketRoutes,
];
