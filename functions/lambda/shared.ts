import { configFromEnv } from '../../core/config';
import { createApp, type RouteGroup } from '../app';
import { createDeps, type AppDeps } from '../deps';

let deps: Promise<AppDeps> | undefined;

/** One app per Lambda function with only its route group; dependencies load once per container. */
export function lambdaApp(group: RouteGroup) {
  return createApp(() => {
    deps ??= createDeps(configFromEnv()).catch((error: unknown) => {
      deps = undefined;
      throw error;
    });
    return deps;
  }, [group]);
}
