import type { Principal } from '../core/state/principal';
import type { AppDeps } from './deps';

/** Hono's typed context for every route: the dependencies and, after auth, the caller. */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    principal: Principal;
  };
}
