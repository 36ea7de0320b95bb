/**
 * The sending side of the WAN benchmark, run inside the client namespace so its traffic crosses the
 * emulated link. Two modes, both started by the harness's `go` and stopped at `--deadline-s`:
 *
 *   client.ts slipstream --spec-file F --file F --size N --deadline-s S [--datagram-bytes N]
 *       one upload over UDP with the SDK's session runner (the spec comes from the harness)
 *   client.ts fallback --api-url U --api-key K --bucket B --key K --file F --size N --concurrency N --deadline-s S
 *       the same bytes through the API's HTTP-fallback multipart routes and presigned part URLs
 *
 * Prints JSON lines (child-io.ts): progress while it runs, then one result.
 */
import { readFileSync } from 'node:fs';
import type { TransferSpec } from '../../contracts';
import { runUdpSession } from '../../client/sdk/session';
import { emit, flags, required, requiredNumber, runChild, waitForGo } from './child-io';
import { uploadViaFallback } from './fallback';

const [mode, ...rest] = process.argv.slice(2);
const cancelGraceMs = 5000;
const args = flags(rest);

async function slipstream(): Promise<void> {
  const spec = JSON.parse(readFileSync(required(args, 'spec-file'), 'utf8')) as TransferSpec;
  const size = requiredNumber(args, 'size');
  const datagramBytes = args.has('datagram-bytes') ? requiredNumber(args, 'datagram-bytes') : undefined;
  const controller = new AbortController();
  emit({ type: 'ready' });
  await waitForGo();
  const t0 = performance.now();
  const timer = setTimeout(() => controller.abort(new Error('deadline')), requiredNumber(args, 'deadline-s') * 1000);
  let bytesDone = 0;
  const session = runUdpSession(
    spec,
    { direction: 'upload', files: [{ index: 0, path: required(args, 'path'), size, localPath: required(args, 'file') }], ...(datagramBytes ? { datagramBytes } : {}) },
    {
      onProgress: (p) => {
        bytesDone = p.bytesDone;
        emit({ type: 'progress', elapsedMs: performance.now() - t0, bytesDone: p.bytesDone, rateKbps: p.rateKbps });
      },
      onStatus: () => undefined,
      attach: () => undefined,
      signal: controller.signal,
    },
  );
  // A bound on the wait after the deadline's cancel: the session should end within a few round trips,
  // and a harness that hung on an SDK bug would lose the whole run's report.
  let stoppedAtMs = 0;
  const stuck = new Promise<'stuck'>((resolve) =>
    controller.signal.addEventListener(
      'abort',
      () => {
        stoppedAtMs = performance.now();
        setTimeout(() => resolve('stuck'), cancelGraceMs).unref();
      },
      { once: true },
    ),
  );
  const result = await Promise.race([session, stuck]);
  clearTimeout(timer);
  if (result === 'stuck') {
    emit({
      type: 'result',
      status: 'CANCELED',
      seconds: (stoppedAtMs - t0) / 1000,
      bytesDone,
      deadlineHit: true,
      note: `runUdpSession did not return within ${cancelGraceMs / 1000} s of the cancel`,
    });
    return;
  }
  emit({
    type: 'result',
    status: result.status,
    seconds: (performance.now() - t0) / 1000,
    // A canceled session reports the whole size; the last progress is what the engine acknowledged.
    bytesDone: result.status === 'COMPLETED' ? size : bytesDone,
    deadlineHit: controller.signal.aborted,
    ...(result.error ? { error: `${result.error.code}: ${result.error.message}` } : {}),
  });
}

async function fallback(): Promise<void> {
  const controller = new AbortController();
  emit({ type: 'ready' });
  await waitForGo();
  const t0 = performance.now();
  const timer = setTimeout(() => controller.abort(new Error('deadline')), requiredNumber(args, 'deadline-s') * 1000);
  const result = await uploadViaFallback({
    apiUrl: required(args, 'api-url'),
    apiKey: required(args, 'api-key'),
    bucket: required(args, 'bucket'),
    key: required(args, 'key'),
    file: required(args, 'file'),
    sizeBytes: requiredNumber(args, 'size'),
    concurrency: requiredNumber(args, 'concurrency'),
    signal: controller.signal,
    onPart: (bytesDone) => emit({ type: 'progress', elapsedMs: performance.now() - t0, bytesDone }),
  });
  clearTimeout(timer);
  emit({
    type: 'result',
    status: result.completed ? 'COMPLETED' : 'CANCELED',
    seconds: (performance.now() - t0) / 1000,
    bytesDone: result.bytesDone,
    deadlineHit: controller.signal.aborted,
    partCount: result.partCount,
    partSizeBytes: result.partSizeBytes,
  });
}

runChild(async () => {
  if (mode === 'slipstream') await slipstream();
  else if (mode === 'fallback') await fallback();
  else throw new Error('usage: client.ts slipstream|fallback --name value …');
});
