import { handle } from 'hono/aws-lambda';
import { objectRoutes } from '../routes/objects';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(objectRoutes));
