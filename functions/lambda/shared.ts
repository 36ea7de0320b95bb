import type { Hono } from 'hono';
import { configFromEnv } from '../../core/config';
import { createApp } from '../app';
import { createDeps, type AppDeps } from '../deps';
import type { AppEnv } from '../env';

let deps: AppDeps | undefined;

/**
 * One app per Lambda function with only its route group, so its bundle holds only that group's code.
 * Configuration is read on the first request: a bad variable answers it with a logged error.
 */
export function lambdaApp(...routes: Hono<AppEnv>[]) {
  return createApp(() => {
    deps ??= createDeps(configFromEnv());
    return deps;
  }, routes);
}
