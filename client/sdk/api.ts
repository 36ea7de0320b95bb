import { z } from 'zod';
import {
  bucketPreferencesResponseSchema,
  connectionInfoSchema,
  errorBodySchema,
  setupResponseSchema,
  transferListSchema,
  transferSchema,
  type BucketPreferencesPatch,
  type ConnectionInfo,
  type SetupRequest,
  type Transfer,
  type TransferRequest,
  type TransferSpec,
} from '../../contracts';
import { SlipstreamApiError, SlipstreamNetworkError } from './errors';

export const defaultRequestTimeoutMs = 30_000;
const healthSchema = z.object({ status: z.string() });
const userAgent = 'slipstream-client/0.1';
/** Error bodies quoted in messages are cut here, so an HTML error page does not flood a terminal. */
const maxQuotedBodyChars = 200;

export interface ApiClientOptions {
  endpoint: string;
  apiKey: string;
  timeoutMs?: number;
  /** For tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export interface ApiResponse<T> {
  body: T;
  status: number;
  /** The server's `Date` header, when it sent a valid one (clock-skew check). */
  serverDate: Date | undefined;
  roundTripMs: number;
}

export type BucketPreferencesResponse = z.infer<typeof bucketPreferencesResponseSchema>;
export type TransferList = z.infer<typeof transferListSchema>;
export type TransferListState = 'active' | 'completed' | 'all';

interface RequestOptions {
  method?: string;
  query?: Record<string, string | undefined>;
  json?: unknown;
  /** Skip `Authorization` (the health check). */
  anonymous?: boolean;
  signal?: AbortSignal;
}

function retryAfter(headers: Headers): number | undefined {
  const value = headers.get('retry-after');
  return value && /^\d+$/.test(value) ? Number(value) : undefined;
}

function describeNetworkError(error: unknown, url: string, timeoutMs: number): SlipstreamNetworkError {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return new SlipstreamNetworkError(`${url} did not answer within ${timeoutMs} ms`, { cause: error });
  const why = e.cause?.code ?? e.cause?.message ?? e.message ?? String(error);
  return new SlipstreamNetworkError(`cannot reach ${url}: ${why}`, { cause: error });
}

/** A typed client for the Slipstream control-plane API (README "The API"). */
export class SlipstreamApi {
  readonly endpoint: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ApiClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? defaultRequestTimeoutMs;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** One call: JSON in and out, errors as `SlipstreamApiError` / `SlipstreamNetworkError`. */
  async request<S extends z.ZodType>(path: string, schema: S, options: RequestOptions = {}): Promise<ApiResponse<z.infer<S>>> {
    // Absolute URLs are for links the API hands out (e.g. the fallback URL from connection info).
    const url = new URL(/^https?:\/\//.test(path) ? path : this.endpoint + path);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, value);
    }
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': userAgent };
    if (!options.anonymous) headers.authorization = `Bearer ${this.apiKey}`;
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const started = performance.now();
    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(url, {
        method: options.method ?? 'GET',
        headers,
        ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}),
        signal,
      });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw describeNetworkError(error, `${url.origin}${url.pathname}`, this.timeoutMs);
    }
    const roundTripMs = performance.now() - started;
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const parsed = errorBodySchema.safeParse(json);
      if (parsed.success) {
        throw new SlipstreamApiError(response.status, parsed.data.error.code, parsed.data.error.message, retryAfter(response.headers));
      }
      const quoted = text.slice(0, maxQuotedBodyChars).trim();
      throw new SlipstreamApiError(response.status, `Http${response.status}`, `${url.pathname} answered ${response.status}${quoted ? `: ${quoted}` : ''}`, retryAfter(response.headers));
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const why = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      throw new SlipstreamApiError(response.status, 'InvalidResponse', `${url.pathname} answered with an unexpected body (${why}); is ${this.endpoint} a Slipstream API?`);
    }
    const dateHeader = response.headers.get('date');
    const serverDate = dateHeader ? new Date(dateHeader) : undefined;
    return {
      body: parsed.data,
      status: response.status,
      serverDate: serverDate && !Number.isNaN(serverDate.getTime()) ? serverDate : undefined,
      roundTripMs,
    };
  }

  /** `GET /health`, without credentials. */
  health(): Promise<ApiResponse<{ status: string }>> {
    return this.request('/health', healthSchema, { anonymous: true });
  }

  /** `GET /{bucket}?faspConnectionInfo` as JSON: a short-lived access key, engine host/port, fallback URL. */
  async connectionInfo(bucket: string, signal?: AbortSignal): Promise<ConnectionInfo> {
    const path = `/${encodeURIComponent(bucket)}?faspConnectionInfo`;
    return (await this.request(path, connectionInfoSchema, signal ? { signal } : {})).body;
  }

  /** `POST /files/upload_setup` with one transfer request; the bucket goes under `slipstream.bucket`. */
  uploadSetup(bucket: string, request: TransferRequest, signal?: AbortSignal): Promise<TransferSpec> {
    return this.setup('/files/upload_setup', bucket, request, signal);
  }

  /** `POST /files/download_setup` with one transfer request. */
  downloadSetup(bucket: string, request: TransferRequest, signal?: AbortSignal): Promise<TransferSpec> {
    return this.setup('/files/download_setup', bucket, request, signal);
  }

  private async setup(path: string, bucket: string, request: TransferRequest, signal?: AbortSignal): Promise<TransferSpec> {
    const body: SetupRequest = { transfer_requests: [{ transfer_request: { ...request, slipstream: { ...request.slipstream, bucket } } }] };
    const { body: response } = await this.request(path, setupResponseSchema, { method: 'POST', json: body, ...(signal ? { signal } : {}) });
    const [entry] = response.transfer_specs;
    if (!entry) throw new SlipstreamApiError(200, 'InvalidResponse', `${path} answered without a transfer spec`);
    // A per-entry error (Aspera shape) carries the HTTP status in `code` and our error code in `reason`.
    if ('error' in entry) throw new SlipstreamApiError(entry.error.code, entry.error.reason, entry.error.user_message);
    return entry.transfer_spec;
  }

  async getPreferences(bucket: string): Promise<BucketPreferencesResponse> {
    return (await this.request(`/v1/buckets/${encodeURIComponent(bucket)}/preferences`, bucketPreferencesResponseSchema)).body;
  }

  /** `PATCH`: only the fields given change. */
  async patchPreferences(bucket: string, patch: BucketPreferencesPatch): Promise<BucketPreferencesResponse> {
    const path = `/v1/buckets/${encodeURIComponent(bucket)}/preferences`;
    return (await this.request(path, bucketPreferencesResponseSchema, { method: 'PATCH', json: patch })).body;
  }

  async listTransfers(query: { state?: TransferListState; bucket?: string; limit?: number; cursor?: string } = {}): Promise<ApiResponse<TransferList>> {
    return this.request('/v1/transfers', transferListSchema, {
      query: {
        state: query.state,
        bucket: query.bucket,
        limit: query.limit === undefined ? undefined : String(query.limit),
        cursor: query.cursor,
      },
    });
  }

  async getTransfer(id: string): Promise<Transfer> {
    return (await this.request(`/v1/transfers/${encodeURIComponent(id)}`, transferSchema)).body;
  }

  async cancelTransfer(id: string): Promise<Transfer> {
    return (await this.request(`/v1/transfers/${encodeURIComponent(id)}/cancel`, transferSchema, { method: 'POST' })).body;
  }

  // ── HTTP fallback: the same transfer, continued over HTTPS (README "When UDP is blocked") ──────────

  /** Records a switch of transport on the transfer (shown in its status). */
  async recordTransport(id: string, transport: 'http' | 'udp', reason: string): Promise<Transfer> {
    return (await this.request(`${transferPath(id)}/transport`, transferSchema, { method: 'POST', json: { transport, reason: reason.slice(0, 200) } })).body;
  }

  /** Finds or starts file `index`'s multipart upload; lists the parts already durable (not to be sent again). */
  async fallbackFile(id: string, index: number, file: { path: string; sizeBytes: number; sha256: string }, signal?: AbortSignal): Promise<FallbackFileState> {
    return (await this.request(`${transferPath(id)}/files/${index}/upload`, fallbackFileStateSchema, { method: 'POST', json: file, ...(signal ? { signal } : {}) })).body;
  }

  /** Presigned part URLs; S3 refuses a body whose MD5 is not the one signed. */
  async signFallbackParts(id: string, index: number, parts: { partNumber: number; md5: string }[], signal?: AbortSignal): Promise<SignedParts> {
    return (await this.request(`${transferPath(id)}/files/${index}/parts`, signedPartsSchema, { method: 'POST', json: { parts }, ...(signal ? { signal } : {}) })).body;
  }

  /** Reports a part S3 accepted; the service checks it with S3 and records it durable. */
  async recordFallbackPart(id: string, index: number, partNumber: number, part: { etag: string; sha256: string }, signal?: AbortSignal): Promise<void> {
    await this.request(`${transferPath(id)}/files/${index}/parts/${partNumber}`, z.unknown(), { method: 'POST', json: part, ...(signal ? { signal } : {}) });
  }

  /** Completes the file's object once every part is durable and the checksum matches. */
  async completeFallbackFile(id: string, index: number, sha256: string, signal?: AbortSignal): Promise<void> {
    await this.request(`${transferPath(id)}/files/${index}/complete`, z.unknown(), { method: 'POST', json: { sha256 }, ...(signal ? { signal } : {}) });
  }

  async finishFallbackTransfer(id: string, files: number): Promise<void> {
    await this.request(`${transferPath(id)}/finish`, z.unknown(), { method: 'POST', json: { files } });
  }

  /** Presigned GET URLs for download paths (objects, or prefixes ending in `/`), up to 100 paths a call. */
  async fallbackDownloads(id: string, paths: string[], signal?: AbortSignal): Promise<FallbackDownloads> {
    return (await this.request(`${transferPath(id)}/downloads`, fallbackDownloadsSchema, { method: 'POST', json: { paths }, ...(signal ? { signal } : {}) })).body;
  }
}

const transferPath = (id: string) => `/v1/transfers/${encodeURIComponent(id)}`;

const fallbackFileStateSchema = z.object({
  fileIndex: z.number().int(),
  key: z.string(),
  status: z.enum(['open', 'committed']),
  uploadId: z.string().nullable(),
  partSizeBytes: z.number().int().positive(),
  partCount: z.number().int().min(1),
  parts: z.array(z.object({ partNumber: z.number().int(), sizeBytes: z.number().int(), sha256: z.string(), etag: z.string() })),
});
export type FallbackFileState = z.infer<typeof fallbackFileStateSchema>;

const signedPartsSchema = z.object({
  parts: z.array(z.object({ partNumber: z.number().int(), url: z.string().url(), sizeBytes: z.number().int(), headers: z.record(z.string(), z.string()) })),
  expiresAt: z.string(),
});
export type SignedParts = z.infer<typeof signedPartsSchema>;

const fallbackDownloadsSchema = z.object({
  files: z.array(
    z.object({ path: z.string(), key: z.string(), url: z.string().url(), sizeBytes: z.number().int().min(0), etag: z.string().nullish(), sha256: z.string().nullish() }),
  ),
  expiresAt: z.string(),
});
export type FallbackDownloads = z.infer<typeof fallbackDownloadsSchema>;
