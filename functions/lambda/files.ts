import { handle } from 'hono/aws-lambda';
import { fileRoutes } from '../routes/files';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp(fileRoutes));
