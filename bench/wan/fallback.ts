/**
 * The HTTP fallback path as a client would drive it: create a multipart upload through the API, sign
 * part URLs in batches, PUT the parts straight to S3 (bounded concurrency), complete: the plain
 * presigned multipart path (as the console's Standard transport drives it), without the SDK fallback's
 * per-part SHA-256/MD5 (client/sdk/fallback.ts continues a UDP transfer; bench:fallback measures that).
 * Used by client.ts inside the client namespace.
 */
import { open } from 'node:fs/promises';

/** The API signs at most this many part URLs per call (contracts/fallback.ts maxSignBatch). */
const signBatch = 100;
/** Attempts per part: a PUT that fails (reset, 5xx) is sent again, a few times at most. */
const partAttempts = 3;

export interface FallbackUploadOptions {
  apiUrl: string;
  apiKey: string;
  bucket: string;
  key: string;
  /** The first `sizeBytes` of this file are uploaded. */
  file: string;
  sizeBytes: number;
  concurrency: number;
  partSizeBytes?: number;
  signal: AbortSignal;
  onPart?: (bytesDone: number) => void;
}

export interface FallbackUploadResult {
  transferId: string;
  partCount: number;
  partSizeBytes: number;
  /** Bytes in parts S3 accepted. */
  bytesDone: number;
  completed: boolean;
}

async function api<T>(o: FallbackUploadOptions, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${o.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${o.apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: o.signal,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export async function uploadViaFallback(o: FallbackUploadOptions): Promise<FallbackUploadResult> {
  const created = await api<{ transferId: string; partSizeBytes: number; partCount: number }>(o, 'POST', '/v1/fallback/uploads', {
    bucket: o.bucket,
    key: o.key,
    sizeBytes: o.sizeBytes,
    ...(o.partSizeBytes ? { partSizeBytes: o.partSizeBytes } : {}),
  });
  const { transferId, partSizeBytes, partCount } = created;
  const result: FallbackUploadResult = { transferId, partCount, partSizeBytes, bytesDone: 0, completed: false };
  const urls = new Map<number, string>();
  const etags = new Map<number, string>();
  const handle = await open(o.file, 'r');
  try {
    let next = 1;
    let signing: Promise<void> | undefined;
    const urlFor = async (partNumber: number): Promise<string> => {
      while (!urls.has(partNumber)) {
        signing ??= (async () => {
          const numbers = Array.from({ length: Math.min(signBatch, partCount - partNumber + 1) }, (_, i) => partNumber + i).filter((n) => !urls.has(n));
          const signed = await api<{ parts: { partNumber: number; url: string }[] }>(o, 'POST', `/v1/fallback/uploads/${transferId}/parts`, { partNumbers: numbers });
          for (const part of signed.parts) urls.set(part.partNumber, part.url);
        })().finally(() => (signing = undefined));
        await signing;
      }
      return urls.get(partNumber)!;
    };
    const worker = async () => {
      while (next <= partCount && !o.signal.aborted) {
        const partNumber = next++;
        const start = (partNumber - 1) * partSizeBytes;
        const body = Buffer.allocUnsafe(Math.min(partSizeBytes, o.sizeBytes - start));
        const { bytesRead } = await handle.read(body, 0, body.length, start);
        if (bytesRead !== body.length) throw new Error(`${o.file} is shorter than ${o.sizeBytes} bytes`);
        for (let attempt = 1; ; attempt += 1) {
          try {
            const response = await fetch(await urlFor(partNumber), { method: 'PUT', body, signal: o.signal });
            await response.arrayBuffer();
            const etag = response.headers.get('etag');
            if (!response.ok || !etag) throw new Error(`PUT part ${partNumber}: ${response.status}`);
            etags.set(partNumber, etag);
            break;
          } catch (error) {
            if (o.signal.aborted || attempt >= partAttempts) throw error;
          }
        }
        result.bytesDone += body.length;
        o.onPart?.(result.bytesDone);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, partCount)) }, worker));
    if (o.signal.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new Error('aborted');
    await api(o, 'POST', `/v1/fallback/uploads/${transferId}/complete`, {
      parts: [...etags].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag })),
    });
    result.completed = true;
    return result;
  } catch (error) {
    if (!o.signal.aborted) throw error;
    // Stopped at the deadline: what S3 accepted so far is the measurement; the upload is aborted.
    await fetch(`${o.apiUrl}/v1/fallback/uploads/${transferId}`, { method: 'DELETE', headers: { authorization: `Bearer ${o.apiKey}` } }).catch(() => undefined);
    return result;
  } finally {
    await handle.close();
  }
}
