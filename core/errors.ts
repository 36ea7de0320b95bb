import { errorStatusByCode, type ErrorCode } from '../contracts';

/**
 * A failure with a meaning the caller can act on. The API maps it to `{error:{code,message}}` with the
 * code's fixed status; the engine maps it to a session close reason.
 */
export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  get status(): number {
    return errorStatusByCode[this.code];
  }
}
