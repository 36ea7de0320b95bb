import { handle } from 'hono/aws-lambda';
import { transferRoutes } from '../routes/transfers';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(transferRoutes));
