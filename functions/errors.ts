import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ZodError } from 'zod';
import { errorStatusByCode, type ErrorBody, type ErrorCode } from '../contracts';
import { ServiceError } from '../core/errors';
import { InvalidCursorError } from '../core/state/transfers';
import { TokenError } from '../core/token';

export function zodMessage(error: ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : 'body';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/** The one place where failures become HTTP responses. */
export function toServiceError(error: unknown): ServiceError {
  if (error instanceof ServiceError) return error;
  if (error instanceof ZodError) return new ServiceError('ValidationError', zodMessage(error));
  if (error instanceof InvalidCursorError) return new ServiceError('InvalidQuery', error.message);
  if (error instanceof TokenError) return new ServiceError('Unauthorized', `the URL's grant is not valid: ${error.message}`);
  if (error instanceof HTTPException) {
    const byStatus: Partial<Record<number, ErrorCode>> = { 400: 'ValidationError', 401: 'Unauthorized', 404: 'NotFound', 413: 'PayloadTooLarge' };
    return new ServiceError(byStatus[error.status] ?? 'InternalError', error.message || 'request refused');
  }
  return new ServiceError('InternalError', 'an internal error occurred; it has been logged');
}

export function errorResponse(c: Context, error: ServiceError): Response {
  const body: ErrorBody = { error: { code: error.code, message: error.message } };
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json(body, errorStatusByCode[error.code]);
}

export function onError(error: Error, c: Context): Response {
  const mapped = toServiceError(error);
  if (mapped.code === 'InternalError') {
    console.error(JSON.stringify({ level: 'error', msg: 'unhandled error', method: c.req.method, path: c.req.path, error: String(error.stack ?? error) }));
  }
  return errorResponse(c, mapped);
}
