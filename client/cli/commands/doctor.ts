import { z } from 'zod';
import { bucketNameProblem, type TransferSpec } from '../../../contracts';
import { SlipstreamApi } from '../../sdk/api';
import { requireConfig, type ResolvedConfig } from '../../sdk/config';
import { SlipstreamApiError } from '../../sdk/errors';
import { createHttpFetch, proxyFor, proxySettingsFromEnv, type ProxySettings } from '../../sdk/http';
import { checkUdp } from '../../sdk/session';
import { parseCommand } from '../args';
import { ExitCode, UsageError, exitCodeFor } from '../exit-codes';
import { formatDuration, maskSecret } from '../format';
import { configFor, printJson, printLine, showHelp, type CommandContext } from './context';

export const doctorUsage = `slip doctor [bucket]
  Checks config, the HTTP proxy in use, API reachability, the API key, clock skew, the bucket
  (immutability), the HTTP fallback routes, token issuance and UDP reachability, then says which
  transports work from here. Without a bucket, the local stack's default bucket is used.`;

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface DoctorCheck {
  name: 'config' | 'proxy' | 'api' | 'auth' | 'clock' | 'bucket' | 'fallback' | 'token' | 'udp' | 'transports';
  status: CheckStatus;
  detail: string;
  /** For failures: the exit code of the error class (client/README.md). */
  exitCode?: number;
}

export interface DoctorReport {
  ok: boolean;
  endpoint: string | null;
  bucket: string | null;
  checks: DoctorCheck[];
}

/** Tokens and access keys carry absolute expiry times; beyond this a wrong clock starts to matter. */
export const maxClockSkewSeconds = 30;
export const udpCheckTimeoutMs = 5000;
/** The token check's dummy key; its transfer is canceled right after. */
const probeKey = '.slip-doctor/probe';
/** A transfer id that matches the API's pattern and never exists: the fallback probe expects a 404. */
const absentTransferId = 'tr_00000000000000000000';

const describeSource = (s: ResolvedConfig['sources']['endpoint']) => (s.kind === 'unset' ? 'not set' : `${s.kind} ${s.detail}`);
const failure = (name: DoctorCheck['name'], error: unknown, why?: string): DoctorCheck => ({
  name,
  status: 'fail',
  detail: why ?? (error as Error).message,
  exitCode: exitCodeFor(error),
});

export interface DoctorOptions {
  resolve: () => ResolvedConfig;
  bucket: string | undefined;
  fetch?: typeof fetch;
  /** HTTPS_PROXY / HTTP_PROXY / NO_PROXY come from here (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Runs the checks in order; a check that cannot run because an earlier one failed is `skip`. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const report = (endpoint: string | null, bucket: string | null): DoctorReport => ({
    ok: checks.every((c) => c.status !== 'fail'),
    endpoint,
    bucket,
    checks,
  });
  const skipRest = (names: DoctorCheck['name'][], why: string) => names.forEach((name) => checks.push({ name, status: 'skip', detail: why }));

  let config: ResolvedConfig & { endpoint: string; apiKey: string };
  try {
    config = requireConfig(options.resolve());
  } catch (error) {
    checks.push(failure('config', error));
    skipRest(['proxy', 'api', 'auth', 'clock', 'bucket', 'fallback', 'token', 'udp', 'transports'], 'needs a working config');
    return report(null, options.bucket ?? null);
  }
  checks.push({
    name: 'config',
    status: 'ok',
    detail: `endpoint ${config.endpoint} (${describeSource(config.sources.endpoint)}); API key ${maskSecret(config.apiKey)} (${describeSource(config.sources.apiKey)})`,
  });
  const bucket = options.bucket ?? config.defaultBucket;
  const proxy = proxySettingsFromEnv(options.env ?? process.env);
  const viaProxy = proxyFor(proxy, config.endpoint);
  checks.push({
    name: 'proxy',
    status: 'ok',
    detail: viaProxy ? `HTTP goes through ${redactProxy(viaProxy)} (HTTPS_PROXY/HTTP_PROXY); UDP cannot use an HTTP proxy` : 'no proxy for the API (none set, or NO_PROXY covers it): direct',
  });
  const api = new SlipstreamApi({ endpoint: config.endpoint, apiKey: config.apiKey, fetch: options.fetch ?? createHttpFetch(proxy) });

  // API reachability, and the server's clock from the same answer.
  const sentAtMs = Date.now();
  let health;
  try {
    health = await api.health();
  } catch (error) {
    checks.push(failure('api', error, apiUnreachable(error, proxy, viaProxy)));
    skipRest(['auth', 'clock', 'bucket', 'fallback', 'token', 'udp', 'transports'], 'needs the API');
    return report(config.endpoint, bucket ?? null);
  }
  const localMidMs = (sentAtMs + Date.now()) / 2;
  checks.push({ name: 'api', status: 'ok', detail: `${config.endpoint}/health answered in ${Math.round(health.roundTripMs)} ms` });

  let authOk = false;
  try {
    await api.listTransfers({ limit: 1 });
    authOk = true;
    checks.push({ name: 'auth', status: 'ok', detail: 'the API key is accepted' });
  } catch (error) {
    const why = error instanceof SlipstreamApiError && (error.status === 401 || error.status === 403) ? `the API key is refused: ${error.message}` : undefined;
    checks.push(failure('auth', error, why));
  }

  checks.push(clockCheck(health.serverDate, localMidMs));

  if (!authOk) {
    skipRest(['bucket', 'fallback', 'token', 'udp', 'transports'], 'needs an accepted API key');
    return report(config.endpoint, bucket ?? null);
  }
  if (bucket === undefined) {
    skipRest(['bucket', 'fallback', 'token', 'udp', 'transports'], 'name a bucket: slip doctor <bucket>');
    return report(config.endpoint, null);
  }

  let fallbackUrl: string;
  try {
    const info = await api.connectionInfo(bucket);
    fallbackUrl = info.fallbackUrl;
    checks.push({ name: 'bucket', status: 'ok', detail: `${bucket}: transfers allowed (no immutability policy); engine ${info.engine.host}:${info.engine.port}` });
  } catch (error) {
    const immutable = error instanceof SlipstreamApiError && error.code === 'BucketImmutable';
    checks.push(failure('bucket', error, immutable ? `${bucket} has an immutability policy (S3 Object Lock): high-speed and fallback transfers are refused` : undefined));
    skipRest(['fallback', 'token', 'udp', 'transports'], `needs a bucket that accepts transfers`);
    return report(config.endpoint, bucket);
  }

  const routes = await fallbackCheck(api, fallbackUrl);
  checks.push(routes);

  let spec: TransferSpec | undefined;
  try {
    spec = await probeSpec(api, bucket);
    const leftMs = new Date(spec.slipstream.token_expires_at).getTime() - Date.now();
    checks.push(
      leftMs > 0
        ? { name: 'token', status: 'ok', detail: `${spec.direction === 'send' ? 'an upload' : 'a download'} spec was issued; its token expires in ${formatDuration(leftMs / 1000)} (${spec.slipstream.token_expires_at})` }
        : { name: 'token', status: 'fail', detail: `the token was issued already expired (${spec.slipstream.token_expires_at}); check the clocks`, exitCode: ExitCode.configOrAuth },
    );
  } catch (error) {
    checks.push(failure('token', error));
  }

  const udp = await udpCheck(spec);
  checks.push(udp);
  const summary = transportsCheck(udp, routes, spec, viaProxy);
  // UDP blocked is a problem only when nothing else can carry the transfer.
  if (udp.status === 'fail' && summary.status !== 'fail') {
    delete udp.exitCode;
    udp.status = 'warn';
  }
  checks.push(summary);
  // The probe's transfer would otherwise stay QUEUED in `slip ls --active`.
  if (spec) await api.cancelTransfer(spec.slipstream.transfer_id).catch(() => undefined);
  return report(config.endpoint, bucket);
}

/** user:password in a proxy URL is not printed. */
function redactProxy(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) parsed.username = parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return 'an unparsable proxy URL';
  }
}

function apiUnreachable(error: unknown, proxy: ProxySettings, viaProxy: string | undefined): string {
  const message = (error as Error).message;
  if (error instanceof SlipstreamApiError) return message;
  if (viaProxy) return `${message} (through the proxy ${redactProxy(viaProxy)}: is it running, and does it allow this host?)`;
  const proxyHint = proxy.httpProxy || proxy.httpsProxy ? 'NO_PROXY makes the API direct' : 'no proxy is set';
  return `${message} (${proxyHint}: if this network only lets the web out through a proxy, set HTTPS_PROXY, e.g. HTTPS_PROXY=http://proxy.example:3128)`;
}

/** Which ways a transfer can go from here, and why not. */
function transportsCheck(udp: DoctorCheck, routes: DoctorCheck, spec: TransferSpec | undefined, viaProxy: string | undefined): DoctorCheck {
  if (!spec) return { name: 'transports', status: 'skip', detail: 'needs a transfer spec (see token)' };
  const mode = spec.http_fallback;
  const udpWorks = udp.status === 'ok';
  const httpsWorks = routes.status === 'ok' && mode !== 'false';
  const https = mode === 'false' ? 'HTTPS fallback is disabled for this bucket (its transfer preferences)' : routes.status === 'ok' ? `HTTPS works${viaProxy ? ` through ${redactProxy(viaProxy)}` : ''}${mode === 'force' ? ' and is the only transport (http_fallback force)' : ''}` : 'HTTPS fallback routes do not answer';
  const udpText = mode === 'force' ? 'UDP is not used (http_fallback force)' : udpWorks ? 'UDP (high speed) works' : `UDP is blocked (${udp.detail})`;
  const detail = `${udpText}; ${https}`;
  if ((udpWorks && mode !== 'force') || httpsWorks) return { name: 'transports', status: udpWorks || mode === 'force' ? 'ok' : 'warn', detail: udpWorks || mode === 'force' ? detail : `${detail}: transfers will continue over HTTPS, slower on long or lossy links` };
  return { name: 'transports', status: 'fail', detail: `${detail}: no transport works from here`, exitCode: ExitCode.network };
}

export function clockCheck(serverDate: Date | undefined, localMs: number): DoctorCheck {
  if (!serverDate) return { name: 'clock', status: 'skip', detail: 'the API sent no Date header' };
  // The Date header has whole seconds: up to ~1 s of the skew is rounding.
  const skewSeconds = Math.round((localMs - serverDate.getTime()) / 1000);
  const size = Math.abs(skewSeconds);
  if (size <= maxClockSkewSeconds) return { name: 'clock', status: 'ok', detail: `within ${size} s of the API's clock` };
  return {
    name: 'clock',
    status: 'warn',
    detail: `this machine's clock is ${size} s ${skewSeconds > 0 ? 'ahead of' : 'behind'} the API's: tokens and access keys may look expired or not yet valid`,
  };
}

async function fallbackCheck(api: SlipstreamApi, fallbackUrl: string): Promise<DoctorCheck> {
  const url = `${fallbackUrl}/uploads/${absentTransferId}/parts`;
  try {
    await api.request(url, z.unknown());
    return { name: 'fallback', status: 'fail', detail: `${url} answered 200 for a transfer that cannot exist`, exitCode: ExitCode.unexpected };
  } catch (error) {
    if (error instanceof SlipstreamApiError && error.code === 'NoSuchTransfer') return { name: 'fallback', status: 'ok', detail: `HTTP fallback routes answer at ${fallbackUrl}` };
    return failure('fallback', error, `HTTP fallback routes at ${fallbackUrl}: ${(error as Error).message}`);
  }
}

/** An upload spec for a dummy key; a read-only key gets a download spec instead. */
async function probeSpec(api: SlipstreamApi, bucket: string): Promise<TransferSpec> {
  try {
    return await api.uploadSetup(bucket, { paths: [{ source: probeKey, size: 0 }] });
  } catch (error) {
    if (error instanceof SlipstreamApiError && error.status === 403) return api.downloadSetup(bucket, { paths: [{ source: probeKey }] });
    throw error;
  }
}

async function udpCheck(spec: TransferSpec | undefined): Promise<DoctorCheck> {
  if (!spec) return { name: 'udp', status: 'skip', detail: 'needs a transfer spec (see token)' };
  try {
    const result = await checkUdp(spec, { timeoutMs: udpCheckTimeoutMs });
    return result.ok
      ? { name: 'udp', status: 'ok', detail: result.detail }
      : { name: 'udp', status: 'fail', detail: result.detail, exitCode: ExitCode.network };
  } catch (error) {
    return { name: 'udp', status: 'fail', detail: `UDP check failed: ${(error as Error).message}`, exitCode: ExitCode.network };
  }
}

export async function doctorCommand(ctx: CommandContext): Promise<number> {
  const { globals, positionals } = parseCommand(ctx.argv, {}, 1);
  if (globals.help) return showHelp(ctx, doctorUsage);
  if (positionals.length > 1) throw new UsageError(`slip doctor takes at most one bucket:\n  ${doctorUsage}`);
  const bucket = positionals[0];
  if (bucket !== undefined) {
    const problem = bucketNameProblem(bucket);
    if (problem) throw new UsageError(`"${bucket}" is not a bucket name: it ${problem}`);
  }
  const result = await runDoctor({
    resolve: () => configFor(ctx, globals),
    bucket,
    env: ctx.io.env,
    ...(ctx.deps.fetch ? { fetch: ctx.deps.fetch } : {}),
  });
  if (globals.json) {
    printJson(ctx, result);
  } else {
    for (const c of result.checks) printLine(ctx, `${c.status.padEnd(4)}  ${c.name.padEnd(10)}  ${c.detail}`);
    const failed = result.checks.filter((c) => c.status === 'fail').length;
    printLine(ctx, failed === 0 ? 'no problems found' : `${failed} check${failed > 1 ? 's' : ''} failed`);
  }
  return result.checks.find((c) => c.status === 'fail')?.exitCode ?? ExitCode.ok;
}
