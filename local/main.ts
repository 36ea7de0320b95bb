import { parseArgs } from 'node:util';
import { z } from 'zod';
import { PortInUseError } from './ports';
import { startLocalStack } from './stack';

const usage = `Usage: npm start -- [options]

  --host <addr>           listen address (SLIPSTREAM_LISTEN_HOST, default 127.0.0.1)
  --public-host <host>    host advertised to clients in connection info, specs and presigned URLs
                          (SLIPSTREAM_PUBLIC_HOST, default: the listen address, or 127.0.0.1 for 0.0.0.0)
  --public-url <url>      the API's public base URL, path included, when a reverse proxy serves it
                          (SLIPSTREAM_PUBLIC_URL, e.g. https://files.example.com/slipstream)
  --trust-proxy           take the public base URL from the reverse proxy's X-Forwarded-Proto/-Host/
                          -Port/-Prefix headers (SLIPSTREAM_TRUST_PROXY=1); only behind a proxy that
                          sets them, since any client can send them
  --port <n>              API port (SLIPSTREAM_PORT, default 8080)
  --s3-port <n>           s3rver port (SLIPSTREAM_S3_PORT, default 4568)
  --dynamodb-port <n>     dynalite port (SLIPSTREAM_DYNAMODB_PORT, default 4567)
  --engine-port <n>       UDP engine port (SLIPSTREAM_ENGINE_PORT, default 33001)
  --engine-health-port <n> engine health port (SLIPSTREAM_ENGINE_HEALTH_PORT, default 8081)
  --data-dir <dir>        where data is kept (SLIPSTREAM_DATA_DIR, default .slipstream)
  --bucket <name>         the default bucket (default local)
  --help                  this text`;

const port = z.coerce.number().int().min(1).max(65_535);
const optionsSchema = z.object({
  host: z.string().min(1),
  publicHost: z.string().min(1).optional(),
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  trustProxy: z.boolean(),
  port,
  s3Port: port,
  dynamoDbPort: port,
  enginePort: port,
  engineHealthPort: port,
  dataDir: z.string().min(1),
  bucket: z.string().min(3),
});

function parseOptions() {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      'public-host': { type: 'string' },
      'public-url': { type: 'string' },
      'trust-proxy': { type: 'boolean' },
      port: { type: 'string' },
      's3-port': { type: 'string' },
      'dynamodb-port': { type: 'string' },
      'engine-port': { type: 'string' },
      'engine-health-port': { type: 'string' },
      'data-dir': { type: 'string' },
      bucket: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const env = process.env;
  const parsed = optionsSchema.safeParse({
    host: values.host ?? env.SLIPSTREAM_LISTEN_HOST ?? '127.0.0.1',
    publicHost: values['public-host'] ?? env.SLIPSTREAM_PUBLIC_HOST,
    publicUrl: values['public-url'] ?? (env.SLIPSTREAM_PUBLIC_URL || undefined),
    trustProxy: values['trust-proxy'] ?? ['1', 'true'].includes(env.SLIPSTREAM_TRUST_PROXY ?? ''),
    port: values.port ?? env.SLIPSTREAM_PORT ?? 8080,
    s3Port: values['s3-port'] ?? env.SLIPSTREAM_S3_PORT ?? 4568,
    dynamoDbPort: values['dynamodb-port'] ?? env.SLIPSTREAM_DYNAMODB_PORT ?? 4567,
    enginePort: values['engine-port'] ?? env.SLIPSTREAM_ENGINE_PORT ?? 33_001,
    engineHealthPort: values['engine-health-port'] ?? env.SLIPSTREAM_ENGINE_HEALTH_PORT ?? 8081,
    dataDir: values['data-dir'] ?? env.SLIPSTREAM_DATA_DIR ?? '.slipstream',
    bucket: values.bucket ?? 'local',
  });
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

async function main(): Promise<void> {
  const o = parseOptions();
  const publicHost = o.publicHost ?? (o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host);
  const stack = await startLocalStack({
    listenHost: o.host,
    publicHost,
    apiPort: o.port,
    s3Port: o.s3Port,
    dynamoDbPort: o.dynamoDbPort,
    enginePort: o.enginePort,
    engineHealthPort: o.engineHealthPort,
    dataDir: o.dataDir,
    bucket: o.bucket,
    ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
    trustProxy: o.trustProxy,
  });
  const key = stack.credentials.apiKey;
  console.log(`Slipstream local stack is running (data in ${o.dataDir}/, kept across restarts)

  Console      ${stack.apiUrl}/          ${stack.consoleBuilt ? '(sign in with the admin key below)' : '(not built: npm run build:web)'}
  API          ${stack.apiUrl}          (listening on ${o.host}:${o.port})
  S3           ${stack.s3Endpoint}          (s3rver; access key S3RVER / secret S3RVER)
  DynamoDB     ${stack.dynamoDbEndpoint}          (dynalite; table slipstream)
  Engine       udp://${publicHost}:${o.enginePort}          (health http://${o.host === '0.0.0.0' ? '127.0.0.1' : o.host}:${o.engineHealthPort}/health)
  Bucket       ${o.bucket}
  Admin key    ${stack.adminKeyCreated ? 'created and ' : ''}saved in ${stack.credentialsPath}

Try it:
  export SLIPSTREAM_API_KEY=${key}
  curl -H "Authorization: Bearer $SLIPSTREAM_API_KEY" "${stack.apiUrl}/${o.bucket}?faspConnectionInfo"
  curl -H "Authorization: Bearer $SLIPSTREAM_API_KEY" "${stack.apiUrl}/v1/buckets/${o.bucket}/preferences"
  curl -H "Authorization: Bearer $SLIPSTREAM_API_KEY" "${stack.apiUrl}/v1/transfers"
  npx slip agent --share ~/Outgoing      # high-speed transfers from the console (see README "The console")

Press Ctrl-C to stop.`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    stack.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`could not stop cleanly: ${String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  // Expected failures (a port in use, a bad flag) get one line; anything else keeps its stack for a bug report.
  const expected = error instanceof PortInUseError || (error instanceof Error && error.name !== 'Error');
  console.error(`Cannot start: ${expected || !(error instanceof Error) ? String((error as Error).message ?? error) : error.stack}`);
  process.exit(1);
});
