import { handle } from 'hono/aws-lambda';
import { keyRoutes } from '../routes/keys';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(keyRoutes));
