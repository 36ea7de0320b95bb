import { z } from 'zod';
import {
  bucketListSchema,
  bucketPreferencesResponseSchema,
  connectionInfoSchema,
  errorBodySchema,
  objectDownloadUrlsSchema,
  objectListSchema,
  uploadedPartSchema,
  type BucketPreferencesPatch,
} from '../../contracts';

/** The API answered with an error, or could not be reached (`status` 0). */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Requests without an answer for this long fail (not the part uploads: they have their own). */
const requestTimeoutMs = 30_000;

// The fallback routes' answers (functions/routes/fallback.ts); checked like every other answer.
const createdUploadSchema = z.object({
  transferId: z.string(),
  uploadId: z.string(),
  key: z.string(),
  sizeBytes: z.number().int(),
  partSizeBytes: z.number().int().positive(),
  partCount: z.number().int().positive(),
});
export type CreatedUpload = z.infer<typeof createdUploadSchema>;
const signedPartsSchema = z.object({ parts: z.array(z.object({ partNumber: z.number().int(), url: z.string() })) });
const listedPartsSchema = z.object({ parts: z.array(uploadedPartSchema) });
const completedUploadSchema = z.object({ transferId: z.string(), key: z.string(), sizeBytes: z.number().int() });
const canceledUploadSchema = z.object({ transferId: z.string(), status: z.string() });

interface RequestOptions {
  method?: string;
  query?: Record<string, string | undefined>;
  json?: unknown;
  accept?: string;
  signal?: AbortSignal;
}

/** The control-plane API, called with the API key the user signed in with. */
export class Api {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  async request<S extends z.ZodType>(path: string, schema: S, options: RequestOptions = {}): Promise<z.infer<S>> {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(name, value);
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}`, accept: options.accept ?? 'application/json' };
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(requestTimeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: options.method ?? 'GET',
        headers,
        ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}),
        signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
        cache: 'no-store',
      });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new ApiError(0, 'NetworkError', `the Slipstream service at ${url.origin} could not be reached`);
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const body = errorBodySchema.safeParse(json);
      if (body.success) throw new ApiError(response.status, body.data.error.code, body.data.error.message);
      throw new ApiError(response.status, `Http${response.status}`, `the service answered ${response.status} to ${url.pathname}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ApiError(response.status, 'UnexpectedAnswer', `the service's answer to ${url.pathname} was not understood`);
    return parsed.data;
  }

  buckets() {
    return this.request('/v1/buckets', bucketListSchema);
  }

  listObjects(bucket: string, query: { prefix: string; delimiter?: '/'; cursor?: string; limit: number }, signal?: AbortSignal) {
    return this.request(`/v1/buckets/${bucket}/objects`, objectListSchema, {
      query: { prefix: query.prefix, delimiter: query.delimiter, cursor: query.cursor, limit: String(query.limit) },
      ...(signal ? { signal } : {}),
    });
  }

  downloadUrls(bucket: string, keys: readonly string[], disposition: 'attachment' | 'inline', signal?: AbortSignal) {
    return this.request(`/v1/buckets/${bucket}/download-urls`, objectDownloadUrlsSchema, { method: 'POST', json: { keys, disposition }, ...(signal ? { signal } : {}) });
  }

  preferences(bucket: string) {
    return this.request(`/v1/buckets/${bucket}/preferences`, bucketPreferencesResponseSchema);
  }

  patchPreferences(bucket: string, patch: BucketPreferencesPatch) {
    return this.request(`/v1/buckets/${bucket}/preferences`, bucketPreferencesResponseSchema, { method: 'PATCH', json: patch });
  }

  /** Also the immutability check: a bucket with Object Lock answers 409 BucketImmutable. */
  connectionInfo(bucket: string) {
    return this.request(`/${bucket}`, connectionInfoSchema, { query: { faspConnectionInfo: '' }, accept: 'application/json' });
  }

  createUpload(input: { bucket: string; key: string; sizeBytes: number; contentType?: string }, signal: AbortSignal) {
    return this.request('/v1/fallback/uploads', createdUploadSchema, { method: 'POST', json: input, signal });
  }

  signParts(transferId: string, partNumbers: readonly number[], signal: AbortSignal) {
    return this.request(`/v1/fallback/uploads/${transferId}/parts`, signedPartsSchema, { method: 'POST', json: { partNumbers }, signal });
  }

  /** The parts S3 already holds: a resumed upload sends only the others. */
  listParts(transferId: string, signal: AbortSignal) {
    return this.request(`/v1/fallback/uploads/${transferId}/parts`, listedPartsSchema, { signal });
  }

  completeUpload(transferId: string, parts: readonly { partNumber: number; etag: string }[], signal: AbortSignal) {
    return this.request(`/v1/fallback/uploads/${transferId}/complete`, completedUploadSchema, { method: 'POST', json: { parts }, signal });
  }

  /** Aborts the multipart upload: S3 drops the parts it holds. */
  abortUpload(transferId: string) {
    return this.request(`/v1/fallback/uploads/${transferId}`, canceledUploadSchema, { method: 'DELETE' });
  }
}
