import { handle } from 'hono/aws-lambda';
import { preferencesRoutes } from '../routes/preferences';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(preferencesRoutes));
