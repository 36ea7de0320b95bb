import { configFromEnv } from '../../core/config';
import { createApp, type RouteGroup } from '../app';
import { createDeps, type AppDeps } from '../deps';

let deps: AppDeps | undefined;

/**
 * One app per Lambda function with only its route group. Configuration is read on the first request,
 * so a bad variable answers that request with an error (and is logged) instead of failing the init.
 */
export function lambdaApp(group: RouteGroup) {
  return createApp(() => {
    deps ??= createDeps(configFromEnv());
    return deps;
  }, [group]);
}
