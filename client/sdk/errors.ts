/**
 * Errors the SDK throws, one class per way things go wrong, so callers (and the CLI's exit codes)
 * can tell "fix your input" from "fix your key" from "the network is down".
 */

/** The API answered with an error (`{error:{code,message}}`), or with something we could not read. */
export class SlipstreamApiError extends Error {
  override name = 'SlipstreamApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from `Retry-After`, when the server sent one. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The API could not be reached (connection refused, DNS, TLS) or did not answer within the timeout. */
export class SlipstreamNetworkError extends Error {
  override name = 'SlipstreamNetworkError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Endpoint or API key missing or malformed, or a config file that does not parse. */
export class SlipstreamConfigError extends Error {
  override name = 'SlipstreamConfigError';
}

/** An argument the caller passed is wrong (an s3:// URL, a local path, an option). */
export class SlipstreamInputError extends Error {
  override name = 'SlipstreamInputError';
}
