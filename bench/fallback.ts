/**
 * npm run bench:fallback -- [--size 512MiB] [--detection true|false]
 *
 * The HTTPS path of a transfer, measured side by side in one run on loopback:
 * 1. throughput: a Slipstream upload forced over HTTPS (`http_fallback: force`: presigned parts with
 *    Content-MD5, each recorded and checked, the checksum verified at completion) vs `@aws-sdk/lib-storage`
 *    `Upload` of the same file to the same s3rver (8 MiB parts, 4 at a time, as the SDK's HTTPS path);
 * 2. detection with the SDK's default timeouts: UDP dropped by an nftables rule (root) before the transfer
 *    starts, and in the middle of one; how long until the SDK switched to HTTPS.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { TransferClient, type Transfer } from '../client/sdk/transfer-client';
import { createS3Client } from '../core/clients';
import { freePort } from '../local/ports';
import { startLoopbackStack } from '../local/stack';
import { bucket, Cleanup, fixed, formatSize, GiB, machineInfo, markdownTable, mbits, MiB, parseArgs, parseSize, writeRandomFile } from './lib';

const usage = 'npm run bench:fallback -- [--size 512MiB] [--detection true|false]';
const args = parseArgs(process.argv.slice(2), { size: '512MiB', detection: 'true' }, usage);
const size = parseSize(args.size);
const cleanup = new Cleanup();
cleanup.installSignalHandlers();
const log = (line: string) => console.log(line);
const nftTable = `slipstream_bench_${process.pid}`;

function blockUdp(port: number): void {
  execFileSync('nft', ['add', 'table', 'inet', nftTable]);
  execFileSync('nft', ['add', 'chain', 'inet', nftTable, 'out', '{ type filter hook output priority 0; }']);
  execFileSync('nft', ['add', 'rule', 'inet', nftTable, 'out', 'udp', 'dport', String(port), 'drop']);
}

function unblockUdp(): void {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', nftTable], { stdio: 'ignore' });
  } catch {
    // Nothing blocked.
  }
}

/** Milliseconds from `since` to the transfer's switch to HTTPS (undefined if it never switched). */
function switchTime(transfer: Transfer, since: () => number): Promise<number | undefined> {
  return new Promise((resolve) => {
    transfer.once('transport', () => resolve(performance.now() - since()));
    void transfer.done.then(() => resolve(undefined));
  });
}

async function main(): Promise<void> {
  const info = machineInfo();
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-bench-fallback-'));
  cleanup.add('temporary files', () => rmSync(dir, { recursive: true, force: true }));
  log(`Slipstream HTTPS fallback benchmark — ${info.date}, ${info.nproc} CPU (${info.cpu}), Node ${info.node}; file ${formatSize(size)}`);
  const enginePort = await freePort();
  const stack = await startLoopbackStack(join(dir, 'stack'), { bucket, enginePort });
  cleanup.add('local stack', () => stack.stop());
  const s3 = createS3Client(stack.config);
  cleanup.add('s3 client', () => s3.destroy());
  const file = join(dir, 'file.bin');
  await writeRandomFile(file, size);
  const client = new TransferClient({ endpoint: stack.apiUrl, apiKey: stack.credentials.apiKey, journal: false, env: {}, cwd: dir });
  const check = async (key: string) => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if (head.ContentLength !== size) throw new Error(`${key}: ${head.ContentLength} bytes stored, expected ${size}`);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  };

  const rows: string[][] = [];
  const timed = async (name: string, key: string, run: () => Promise<void>) => {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await run();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await check(key);
    log(`  ${name}: ${fixed(mbits(size, seconds))} Mbit/s in ${fixed(seconds)} s`);
    rows.push([name, fixed(mbits(size, seconds)), fixed((cpu.user + cpu.system) / 1e6 / (size / GiB), 2)]);
    return mbits(size, seconds);
  };

  log('\n▶ throughput on loopback');
  const libStorage = await timed('lib-storage Upload → s3rver (8 MiB parts, 4 at a time)', 'bench-fb/lib.bin', async () => {
    const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: 'bench-fb/lib.bin', Body: createReadStream(file, { highWaterMark: 8 * MiB }) }, partSize: 8 * MiB, queueSize: 4 });
    await upload.done();
  });
  const https = await timed('Slipstream over HTTPS (http_fallback force) → s3rver', 'bench-fb/file.bin', async () => {
    const result = await (await client.upload(file, 's3://local/bench-fb', { httpFallback: 'force' })).done;
    if (result.status !== 'COMPLETED') throw new Error(`HTTPS upload ${result.status}: ${result.error?.message}`);
  });

  const detection: string[][] = [];
  if (args.detection === 'true') {
    cleanup.add('nftables rule', unblockUdp);
    log('\n▶ detection with the default timeouts (UDP dropped by nftables)');
    blockUdp(enginePort);
    const started = performance.now();
    const atStart = await client.upload(file, 's3://local/bench-fb-start', { httpFallback: true });
    const startSwitchMs = await switchTime(atStart, () => started);
    const startResult = await atStart.done;
    unblockUdp();
    await check('bench-fb-start/file.bin');
    detection.push(['UDP blocked before the transfer', startSwitchMs === undefined ? 'never' : fixed(startSwitchMs / 1000, 2), startResult.status]);

    let blockedAt = 0;
    const mid = await client.upload(file, 's3://local/bench-fb-mid', { httpFallback: true, targetRateKbps: 200_000, ratePolicy: 'fixed' });
    mid.on('progress', (p) => {
      if (blockedAt === 0 && p.bytesDone >= size / 4) {
        blockUdp(enginePort);
        blockedAt = performance.now();
      }
    });
    const midSwitchMs = await switchTime(mid, () => blockedAt);
    const midResult = await mid.done;
    unblockUdp();
    await check('bench-fb-mid/file.bin');
    detection.push(['UDP blocked mid-transfer (after ¼ of the file)', midSwitchMs === undefined ? 'never' : fixed(midSwitchMs / 1000, 2), midResult.status]);
    for (const row of detection) log(`  ${row[0]}: switched after ${row[1]} s, ${row[2]}`);
  }

  log(`\n## HTTPS fallback on loopback (${info.date}, ${info.nproc} CPU, Node ${info.node}, ${formatSize(size)})\n`);
  log(markdownTable(['run', 'Mbit/s', 'client CPU s/GiB'], rows));
  log(`\nSlipstream over HTTPS ÷ lib-storage: **${fixed(https / libStorage, 2)}×**`);
  if (detection.length > 0) log(`\n${markdownTable(['UDP failure', 'switched to HTTPS after (s)', 'result'], detection)}`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanup.run());
