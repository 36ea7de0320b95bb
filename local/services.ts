import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { connect } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

/** A real server in a child process, so a crash or a hang of it never takes the API down with it. */
export interface ManagedService {
  readonly name: string;
  readonly endpoint: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

function binPath(pkg: string, bin: string): string {
  return join(dirname(require.resolve(`${pkg}/package.json`)), bin);
}

async function waitForPort(host: string, port: number, child: ChildProcess, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} while starting`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${name} did not listen on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function stopChild(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function startService(
  name: string,
  command: string[],
  options: { host: string; port: number; logFile?: string; readyTimeoutMs?: number; env?: NodeJS.ProcessEnv },
): Promise<ManagedService> {
  const output = options.logFile ? openSync(options.logFile, 'a') : 'ignore';
  const child = spawn(process.execPath, command, { stdio: ['ignore', output, output], ...(options.env ? { env: options.env } : {}) });
  const connectHost = options.host === '0.0.0.0' ? '127.0.0.1' : options.host;
  try {
    await waitForPort(connectHost, options.port, child, name, options.readyTimeoutMs ?? 15_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    name,
    endpoint: `http://${connectHost}:${options.port}`,
    process: child,
    stop: () => stopChild(child),
  };
}

function tsxLoaderUrl(): string {
  return pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist/loader.mjs')).href;
}

/**
 * The UDP engine (`engine-service/main.ts`) as its own process, so it can be killed and restarted on
 * its own; ready when its health port answers. `env` carries its whole configuration.
 */
export function startEngine(options: { host: string; port: number; healthPort: number; env: NodeJS.ProcessEnv; logFile?: string }): Promise<ManagedService> {
  const entry = fileURLToPath(new URL('../engine-service/main.ts', import.meta.url));
  return startService('engine', ['--import', tsxLoaderUrl(), entry], {
    host: options.host,
    port: options.healthPort,
    ...(options.logFile ? { logFile: options.logFile } : {}),
    env: {
      ...options.env,
      SLIPSTREAM_ENGINE_LISTEN_HOST: options.host,
      SLIPSTREAM_ENGINE_PORT: String(options.port),
      SLIPSTREAM_HEALTH_LISTEN_HOST: options.host,
      SLIPSTREAM_HEALTH_PORT: String(options.healthPort),
    },
  });
}

/**
 * s3rver: the S3 API over HTTP, objects on disk under `directory`, credentials S3RVER / S3RVER; run
 * through `s3rver-server.ts`, which adds ListParts and AbortMultipartUpload.
 */
export function startS3rver(options: { host: string; port: number; directory: string; logFile?: string }): Promise<ManagedService> {
  mkdirSync(options.directory, { recursive: true });
  const entry = fileURLToPath(new URL('./s3rver-server.ts', import.meta.url));
  return startService('s3rver', ['--import', tsxLoaderUrl(), entry, '-d', options.directory, '-a', options.host, '-p', String(options.port)], options);
}

export const s3rverCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** dynalite: the DynamoDB API over HTTP, kept in LevelDB under `directory` (in memory without one). */
export function startDynalite(options: { host: string; port: number; directory?: string; logFile?: string }): Promise<ManagedService> {
  if (options.directory) mkdirSync(options.directory, { recursive: true });
  return startService(
    'dynalite',
    [
      binPath('dynalite', 'cli.js'),
      '--host', options.host,
      '--port', String(options.port),
      '--createTableMs', '0',
      '--deleteTableMs', '0',
      '--updateTableMs', '0',
      ...(options.directory ? ['--path', options.directory] : []),
    ],
    options,
  );
}
