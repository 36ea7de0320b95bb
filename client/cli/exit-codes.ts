import {
  SlipstreamApiError,
  SlipstreamConfigError,
  SlipstreamInputError,
  SlipstreamNetworkError,
} from '../sdk/errors';

/** `slip`'s exit codes, one per class of failure (client/README.md). */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  configOrAuth: 3,
  notFound: 4,
  refused: 5,
  network: 6,
  transferFailed: 7,
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Wrong command line: unknown flag, missing argument, bad value. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A transfer ended FAILED or CANCELED. */
export class TransferFailedError extends Error {
  override name = 'TransferFailedError';
}

/** Policy refusals that travel as 400 but are not a malformed request. */
const refusedCodes = new Set(['BucketImmutable', 'TransferNotActive', 'HttpFallbackDisabled']);

export function exitCodeFor(error: unknown): ExitCodeValue {
  if (error instanceof UsageError || error instanceof SlipstreamInputError) return ExitCode.usage;
  if (error instanceof SlipstreamConfigError) return ExitCode.configOrAuth;
  if (error instanceof SlipstreamNetworkError) return ExitCode.network;
  if (error instanceof TransferFailedError) return ExitCode.transferFailed;
  if (error instanceof SlipstreamApiError) {
    if (refusedCodes.has(error.code) || error.status === 409) return ExitCode.refused;
    if (error.status === 401 || error.status === 403) return ExitCode.configOrAuth;
    if (error.status === 404) return ExitCode.notFound;
    // The service is up but its storage is not answering: as good as unreachable, and worth a retry.
    if (error.status === 502 || error.status === 503 || error.status === 504) return ExitCode.network;
    // The API refused what we sent as invalid: a key or value the user gave.
    if (error.status === 400 || error.status === 413 || error.status === 415) return ExitCode.usage;
    return ExitCode.unexpected;
  }
  return ExitCode.unexpected;
}
