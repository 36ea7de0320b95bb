import type { Principal } from '../core/state/principal';
import type { CompanionGrant } from '../core/token';
import type { AppDeps } from './deps';

/** Hono's typed context for every route: the dependencies and, after auth, the caller. */
export interface AppEnv {
  Variables: {
    deps: AppDeps;
    principal: Principal;
    /** Set by the companion routes' middleware from the grant in the URL; nowhere else. */
    grant: CompanionGrant;
  };
}
