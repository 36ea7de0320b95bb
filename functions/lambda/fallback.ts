import { handle } from 'hono/aws-lambda';
import { lambdaApp } from './shared';

export const handler = handle(lambdaApp('fallback'));
