import { createServer } from 'node:http';
import { configFromEnv } from '../core/config';

/**
 * The engine service's process. The UDP transfer engine (protocol core, S3 part sink and range source)
 * is built on this entry; until then it serves the health check the load balancer probes, so the ECS
 * service, its task role and its NLB target group can be deployed and verified.
 */
const config = configFromEnv();
const healthPort = Number(process.env.SLIPSTREAM_HEALTH_PORT ?? 8081);

const server = createServer((req, res) => {
  const healthy = req.url === '/health';
  res.writeHead(healthy ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify(healthy ? { status: 'ok', enginePort: config.enginePort } : { error: { code: 'NotFound', message: 'only /health is served here' } }));
});

server.listen(healthPort, () => {
  console.log(JSON.stringify({ level: 'info', msg: 'engine health endpoint listening', port: healthPort }));
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
