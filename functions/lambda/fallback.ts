import { handle } from 'hono/aws-lambda';
import { companionRoutes } from '../routes/companion';
import { continuationRoutes } from '../routes/continuation';
import { fallbackRoutes } from '../routes/fallback';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(fallbackRoutes, companionRoutes, continuationRoutes));
