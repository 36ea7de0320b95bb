import { handle } from 'hono/aws-lambda';
import { bucketRoutes } from '../routes/bucket';
import { healthRoutes } from '../routes/health';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(healthRoutes, bucketRoutes));
