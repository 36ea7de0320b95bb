import { Hono, type Context } from 'hono';
import {
  errorStatusByCode,
  normalizePrefix,
  objectKeyProblem,
  protocolVersion,
  ratePolicyOrder,
  setupRequestSchema,
  type BucketPreferences,
  type Direction,
  type ErrorCode,
  type HttpFallbackMode,
  type RatePolicy,
  type SetupResponse,
  type TransferRequest,
  type TransferSpec,
} from '../../contracts';
import { ServiceError } from '../../core/errors';
import type { Principal } from '../../core/state/principal';
import { newTransfer } from '../../core/state/transfers';
import { newId } from '../../core/state/secrets';
import { sealToken, type Keyring, type Ticket } from '../../core/token';
import type { AppEnv } from '../env';
import { authenticate, requireScope } from '../middleware/auth';
import { limitBody, readJson } from '../middleware/body';
import { assertQueryKeys, nowSeconds, publicBaseUrl, servedBucket } from '../request';

/** 10,000 paths of up to 4 KiB each would be 40 MiB; real requests are far smaller. */
const setupMaxBodyBytes = 4 * 1024 * 1024;

class EntryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function basename(path: string): string {
  const parts = path.replace(/\\/g, '/').split('/').filter(Boolean);
  return parts[parts.length - 1] ?? '';
}

function checkKey(key: string, what: string): void {
  const problem = objectKeyProblem(key);
  if (problem) throw new EntryError('InvalidObjectKey', `${what} "${key.slice(0, 200)}" is not a usable object key: it ${problem}`);
}

/** The bucket a request is about: implied by an access key, named under `slipstream.bucket` with an API key. */
function requestBucket(c: Context<AppEnv>, principal: Principal, requests: readonly TransferRequest[]): string {
  const named = new Set(requests.map((r) => r.slipstream?.bucket).filter((b): b is string => b !== undefined));
  if (named.size > 1) throw new ServiceError('ValidationError', 'all transfer_requests of one call must name the same bucket');
  const [namedBucket] = [...named];
  if (principal.kind === 'access-key') {
    const implied = (principal.buckets as readonly string[])[0]!;
    if (namedBucket !== undefined && namedBucket !== implied) {
      throw new ServiceError('Forbidden', `this access key is for bucket ${implied}, not ${namedBucket}`);
    }
    return servedBucket(c, implied);
  }
  if (namedBucket === undefined || requests.some((r) => r.slipstream?.bucket === undefined)) {
    throw new ServiceError(
      'ValidationError',
      'name the bucket in every transfer_request as slipstream.bucket, or authenticate with the access key from ?faspConnectionInfo',
    );
  }
  return servedBucket(c, namedBucket);
}

function clampPolicy(requested: RatePolicy | undefined, allowed: RatePolicy): RatePolicy {
  if (!requested) return allowed;
  return ratePolicyOrder.indexOf(requested) > ratePolicyOrder.indexOf(allowed) ? allowed : requested;
}

function fallbackMode(requested: HttpFallbackMode | undefined, bucketMode: HttpFallbackMode, bucket: string): HttpFallbackMode {
  if (bucketMode === 'false' && requested !== undefined && requested !== 'false') {
    throw new EntryError('HttpFallbackDisabled', `bucket ${bucket} does not allow HTTP fallback; ask without http_fallback or use the UDP transport`);
  }
  // A bucket that forces HTTP keeps every transfer on HTTP.
  if (bucketMode === 'force') return 'force';
  return requested ?? bucketMode;
}

interface PlannedSpec {
  spec: TransferSpec;
  ticket: Ticket;
  bytesTotal: number | null;
}

function planEntry(
  c: Context<AppEnv>,
  direction: Direction,
  bucket: string,
  prefs: BucketPreferences,
  request: TransferRequest,
  keyring: Keyring,
): PlannedSpec {
  const deps = c.get('deps');
  const upload = direction === 'send';
  const keyPrefix = normalizePrefix(upload ? request.destination_root : request.source_root);
  if (keyPrefix !== '') checkKey(keyPrefix.slice(0, -1), upload ? 'destination_root' : 'source_root');
  for (const path of request.paths) {
    const relativeKey = upload ? (path.destination ?? basename(path.source)) : path.source;
    checkKey(relativeKey.replace(/\/+$/, ''), upload ? 'destination' : 'source');
    checkKey(keyPrefix + relativeKey.replace(/\/+$/, ''), 'the full object key');
  }
  const dirPrefs = upload ? prefs.upload : prefs.download;
  const capKbps = dirPrefs.targetRateKbps;
  const targetKbps = Math.min(request.target_rate_kbps ?? capKbps, capKbps);
  const minKbps = Math.min(request.min_rate_kbps ?? dirPrefs.minRateKbps, targetKbps);
  const ratePolicy = clampPolicy(request.rate_policy, prefs.ratePolicy);
  const httpFallback = fallbackMode(request.http_fallback, prefs.httpFallback, bucket);

  const transferId = `tr_${newId(10)}`;
  const sessionSecret = deps.randomBytes(32).toString('base64url');
  const expiresAt = nowSeconds(deps) + deps.config.tokenTtlSeconds;
  const ticket: Ticket = {
    transferId,
    bucket,
    keyPrefix,
    direction,
    maxRateKbps: capKbps,
    minRateKbps: minKbps,
    ratePolicy,
    expiresAt,
    sessionSecret,
  };
  const token = sealToken(keyring, 'transfer', ticket, deps.randomBytes(12));
  const base = publicBaseUrl(c);
  const baseUrl = new URL(base);
  const httpsPort = baseUrl.protocol === 'https:' ? Number(baseUrl.port || 443) : 443;
  const httpPort = baseUrl.protocol === 'http:' ? Number(baseUrl.port || 80) : 80;
  const sizes = request.paths.map((p) => p.size);
  const bytesTotal = sizes.every((s): s is number => s !== undefined) ? sizes.reduce((a, b) => a + b, 0) : null;
  const spec: TransferSpec = {
    direction,
    remote_host: deps.config.engineHost,
    fasp_port: deps.config.enginePort,
    token,
    paths: request.paths,
    ...(request.source_root !== undefined ? { source_root: request.source_root } : {}),
    destination_root: request.destination_root ?? (upload ? '/' : '.'),
    target_rate_kbps: targetKbps,
    min_rate_kbps: minKbps,
    target_rate_cap_kbps: capKbps,
    rate_policy: ratePolicy,
    rate_policy_allowed: prefs.ratePolicy,
    cipher: request.cipher ?? 'aes-256-gcm',
    http_fallback: httpFallback,
    http_fallback_port: httpPort,
    https_fallback_port: httpsPort,
    resume_policy: request.resume_policy ?? 'sparse_csum',
    overwrite: request.overwrite ?? 'always',
    ...(request.cookie !== undefined ? { cookie: request.cookie } : {}),
    ...(request.tags !== undefined ? { tags: request.tags } : {}),
    slipstream: {
      transfer_id: transferId,
      bucket,
      key_prefix: keyPrefix,
      session_secret: sessionSecret,
      token_expires_at: new Date(expiresAt * 1000).toISOString(),
      protocol_version: protocolVersion,
      api_url: base,
      fallback_url: `${base}/v1/fallback`,
      default_transport: dirPrefs.defaultTransport,
    },
  };
  return { spec, ticket, bytesTotal };
}

/**
 * Aspera Node API `upload_setup` / `download_setup`. Each transfer_request becomes a spec or an entry
 * error; when every entry fails the response takes the first entry's 4xx status.
 */
async function setup(c: Context<AppEnv>, direction: Direction): Promise<Response> {
  assertQueryKeys(c, []);
  const body = await readJson(c, setupRequestSchema);
  const principal = c.get('principal');
  const requests = body.transfer_requests.map((r) => r.transfer_request);
  const bucket = requestBucket(c, principal, requests);
  requireScope(principal, bucket, direction === 'send' ? 'write' : 'read');
  const deps = c.get('deps');
  await deps.guard.assertTransferable(bucket);
  const { preferences } = await deps.preferences.get(bucket);
  const keyring = await deps.keyring();
  const now = deps.now();

  const response: SetupResponse = { transfer_specs: [] };
  let firstError: EntryError | undefined;
  for (const request of requests) {
    try {
      const planned = planEntry(c, direction, bucket, preferences, request, keyring);
      await deps.transfers.create(
        newTransfer(
          {
            id: planned.ticket.transferId,
            bucket,
            direction: direction === 'send' ? 'upload' : 'download',
            transport: planned.spec.http_fallback === 'force' ? 'http' : 'high-speed',
            status: 'QUEUED',
            keyPrefix: planned.ticket.keyPrefix,
            files: request.paths.length,
            bytesTotal: planned.bytesTotal,
            ownerKeyId: principal.apiKeyId,
            // The HTTPS continuation routes (routes/continuation.ts) allow only what the spec allowed.
            httpFallback: planned.spec.http_fallback,
          },
          now,
        ),
      );
      response.transfer_specs.push({ transfer_spec: planned.spec });
    } catch (error) {
      if (!(error instanceof EntryError)) throw error;
      firstError ??= error;
      response.transfer_specs.push({
        error: { code: errorStatusByCode[error.code], reason: error.code, user_message: error.message },
      });
    }
  }
  if (firstError && response.transfer_specs.every((s) => 'error' in s)) {
    return c.json({ error: { code: firstError.code, message: firstError.message }, ...response }, errorStatusByCode[firstError.code]);
  }
  return c.json(response);
}

export const fileRoutes = new Hono<AppEnv>()
  .use('/files/*', authenticate(['basic', 'bearer']), limitBody(setupMaxBodyBytes))
  .post('/files/upload_setup', (c) => setup(c, 'send'))
  .post('/files/download_setup', (c) => setup(c, 'receive'));
