import { bucketRoutes } from './bucket';
import { companionRoutes } from './companion';
import { fallbackRoutes } from './fallback';
import { fileRoutes } from './files';
import { healthRoutes } from './health';
import { keyRoutes } from './keys';
import { preferencesRoutes } from './preferences';
import { transferRoutes } from './transfers';

/** Every route group, for one process serving the whole API. `/{bucket}` would shadow the fixed paths, so it is last. */
export const allRoutes = [
  fileRoutes,
  preferencesRoutes,
  fallbackRoutes,
  companionRoutes,
  transferRoutes,
  keyRoutes,
  healthRoutes,
  bucketRoutes,
];
