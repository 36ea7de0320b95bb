/**
 * A throwaway Ceph RGW by hand, for poking at it with the AWS CLI or a debugger:
 *
 *   npx tsx test/support/rgw-cli.ts [--port 7480] [--data-dir /tmp]
 *
 * Prints the endpoint and keys as shell exports, runs until Ctrl-C, then removes everything.
 * SLIPSTREAM_RGW_KEEP=1 keeps the cluster's dir (ceph.conf and logs) after it stops.
 */
import { parseArgs } from 'node:util';
import { rgwAvailable, startRgw } from './rgw';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'data-dir': { type: 'string' } } });

if (!rgwAvailable()) {
  console.error('Ceph RGW is not installed: apt-get install ceph-mon ceph-osd radosgw ceph-common');
  process.exit(1);
}

const started = performance.now();
const server = await startRgw({
  ...(values.port ? { port: Number(values.port) } : {}),
  ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
});
console.log(`# RGW ready in ${Math.round(performance.now() - started)} ms; Ctrl-C to stop`);
console.log(`export AWS_ENDPOINT_URL=${server.endpoint}`);
console.log(`export AWS_ACCESS_KEY_ID=${server.accessKeyId}`);
console.log(`export AWS_SECRET_ACCESS_KEY=${server.secretAccessKey}`);
console.log(`export AWS_DEFAULT_REGION=${server.region}`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void server.stop().then(() => process.exit(0));
  });
}
