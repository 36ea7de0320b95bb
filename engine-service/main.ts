import { configFromEnv } from '../core/config';
import { createEngine } from './engine';
import { jsonLogger } from './log';

/**
 * The engine process: UDP transfers on SLIPSTREAM_ENGINE_PORT (33001), health on SLIPSTREAM_HEALTH_PORT
 * (8081). SIGTERM drains: no new sessions, running ones finish or are closed for a resume elsewhere.
 */
const log = jsonLogger();

async function main(): Promise<void> {
  const config = configFromEnv();
  const env = process.env;
  const engine = await createEngine(
    config,
    {
      host: env.SLIPSTREAM_ENGINE_LISTEN_HOST ?? '0.0.0.0',
      port: config.enginePort,
      healthHost: env.SLIPSTREAM_HEALTH_LISTEN_HOST ?? '0.0.0.0',
      healthPort: Number(env.SLIPSTREAM_HEALTH_PORT ?? 8081),
      maxSessions: Number(env.SLIPSTREAM_MAX_SESSIONS ?? 256),
      drainTimeoutMs: Number(env.SLIPSTREAM_DRAIN_TIMEOUT_MS ?? 30_000),
      // Benchmarks only: measure the engine without storage.
      nullSink: env.SLIPSTREAM_ENGINE_NULL_SINK === 'true',
    },
    log,
  );
  await engine.start();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('draining', { signal });
    engine.drain().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('drain failed', { error: String(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  log.error('engine failed to start', { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
