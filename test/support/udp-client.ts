import { readFileSync } from 'node:fs';
import { runUdpSession } from '../../client/sdk/session';
import type { SessionJob } from '../../client/sdk/session-types';
import type { TransferSpec } from '../../contracts';

/**
 * A client in its own process, so a test can kill it (-9) mid-transfer as a user's Ctrl-C or crash
 * would: `tsx test/support/udp-client.ts <job.json>` with `{ spec, job }`; prints progress as JSON lines.
 */
const { spec, job } = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { spec: TransferSpec; job: SessionJob };
const result = await runUdpSession(spec, job, {
  onProgress: (progress) => console.log(JSON.stringify({ progress })),
  onStatus: (status) => console.log(JSON.stringify({ status })),
  attach: () => undefined,
  signal: new AbortController().signal,
});
console.log(JSON.stringify({ result }));
