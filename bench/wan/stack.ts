/**
 * The local stack (`local/main.ts`: s3rver, dynalite, API, engine) inside the server namespace,
 * listening on all its addresses and advertising the WAN address (10.201.0.2) in connection info,
 * specs and presigned URLs, so clients in the client namespace reach it through the emulator. The
 * harness itself talks to it over the management veth.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { TransferSpec } from '../../contracts';
import { s3rverCredentials } from '../../local/services';
import type { RatePolicy } from '../lib';
import { repoRoot, stopChild, tsNodeCommand, type WanLink } from './link';

export const bucket = 'local';
const apiPort = 8080;
const s3Port = 4568;
const engineHealthPort = 8081;
const readyTimeoutMs = 90_000;

export interface ServerStack {
  /** local/main.ts (its children: s3rver, dynalite, the engine). */
  readonly pid: number;
  /** API base URL from the root namespace (management veth). */
  readonly mgmtApiUrl: string;
  /** API base URL clients use (through the WAN). */
  readonly publicApiUrl: string;
  readonly apiKey: string;
  readonly engineLogFile: string;
  /** S3 (s3rver) from the root namespace, to check and delete what the runs uploaded. */
  readonly s3: S3Client;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** The engine answers its health check. */
  engineHealthy(): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startServerStack(link: WanLink, dataDir: string, logFile: string, env?: Record<string, string>): Promise<ServerStack> {
  const { command, args } = tsNodeCommand(join(repoRoot, 'local', 'main.ts'));
  const child = link.spawn(
    link.serverNs,
    command,
    [
      ...args,
      '--host', '0.0.0.0',
      '--public-host', link.serverIp,
      '--port', String(apiPort),
      '--s3-port', String(s3Port),
      '--engine-health-port', String(engineHealthPort),
      '--data-dir', dataDir,
    ],
    { logFile, ...(env ? { env: { ...process.env, ...env } } : {}) },
  );
  const mgmtApiUrl = `http://${link.serverMgmtIp}:${apiPort}`;
  const deadline = Date.now() + readyTimeoutMs;
  const credentialsPath = join(dataDir, 'credentials.json');
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the local stack exited with code ${child.exitCode}; see ${logFile}`);
    const healthy = await fetch(`${mgmtApiUrl}/health`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy && existsSync(credentialsPath)) break;
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`the local stack did not answer on ${mgmtApiUrl} within ${readyTimeoutMs / 1000} s; see ${logFile}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const apiKey = (JSON.parse(readFileSync(credentialsPath, 'utf8')) as { apiKey: string }).apiKey;
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: `http://${link.serverMgmtIp}:${s3Port}`,
    forcePathStyle: true,
    credentials: s3rverCredentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${mgmtApiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 300)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    pid: child.pid!,
    mgmtApiUrl,
    publicApiUrl: `http://${link.serverIp}:${apiPort}`,
    apiKey,
    engineLogFile: join(dataDir, 'engine.log'),
    s3,
    api,
    engineHealthy: () =>
      fetch(`http://${link.serverMgmtIp}:${engineHealthPort}/health`, { signal: AbortSignal.timeout(3000) }).then(
        (r) => r.ok,
        () => false,
      ),
    async stop() {
      s3.destroy();
      await stopChild(child, 15_000);
    },
  };
}

/** The bucket's upload defaults: target rate and allowed policy (admin), as every new spec takes them. */
export async function setUploadPreferences(stack: ServerStack, targetRateKbps: number, ratePolicy: RatePolicy): Promise<void> {
  await stack.api('PATCH', `/v1/buckets/${bucket}/preferences`, { upload: { targetRateKbps }, ratePolicy });
}

/** POST /files/upload_setup for one file under `destinationRoot`. */
export async function uploadSpec(
  stack: ServerStack,
  options: { path: string; size: number; destinationRoot: string; ratePolicy: RatePolicy; targetRateKbps: number },
): Promise<TransferSpec> {
  const response = await stack.api<{ transfer_specs: { transfer_spec?: TransferSpec; error?: unknown }[] }>('POST', '/files/upload_setup', {
    transfer_requests: [
      {
        transfer_request: {
          paths: [{ source: options.path, size: options.size }],
          destination_root: options.destinationRoot,
          rate_policy: options.ratePolicy,
          target_rate_kbps: options.targetRateKbps,
          slipstream: { bucket },
        },
      },
    ],
  });
  const entry = response.transfer_specs[0]!;
  if (!entry.transfer_spec) throw new Error(`upload_setup refused: ${JSON.stringify(entry.error)}`);
  return entry.transfer_spec;
}
