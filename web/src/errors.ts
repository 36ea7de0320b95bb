import { ApiError } from './api';

/** A storage request (part PUT, object GET) that failed, with the HTTP status (0: no answer). */
export class StorageError extends Error {
  override name = 'StorageError';
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Errors that may pass if tried again later: no connection, a busy or failing server. */
export function isTransient(error: unknown): boolean {
  if (error instanceof ApiError || error instanceof StorageError) return error.status === 0 || error.status === 429 || error.status >= 500;
  return false;
}

const sentences: Record<string, string> = {
  Unauthorized: 'Your API key was not accepted (wrong, expired or revoked). Sign in again.',
  Forbidden: 'Your API key may not do this in this bucket.',
  NoSuchBucket: 'This bucket does not exist or is not served by this Slipstream.',
  NoSuchKey: 'The object is no longer there; refresh the list.',
  NetworkError: 'The Slipstream service could not be reached. Check your connection and try again.',
  StorageUnavailable: 'The storage service is not answering right now. Try again in a moment.',
  ImmutabilityUnknown: 'Slipstream could not find out whether this bucket is locked against changes, so nothing was sent. Try again in a moment.',
};

/** An error as a sentence a user understands, with the service's own explanation where it has one. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const known = sentences[error.code];
    if (error.code === 'BucketImmutable') return `This bucket is immutable (S3 Object Lock): ${error.message}.`;
    if (known) return known;
    return `${error.message.charAt(0).toUpperCase()}${error.message.slice(1)}.`;
  }
  if (error instanceof StorageError) return error.message;
  if (error instanceof DOMException && error.name === 'NotAllowedError') return 'The browser did not allow access to that folder.';
  if (error instanceof Error) return error.message;
  return String(error);
}
