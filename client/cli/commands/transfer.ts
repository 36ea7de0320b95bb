import { resolve } from 'node:path';
import { maxDatagramBytes, minDatagramBytes } from '../../sdk/session-types';
import { ratePolicySchema, maxRateKbps } from '../../../contracts';
import { TransferClient, type Transfer, type TransferOptions, type TransferResult } from '../../sdk/transfer-client';
import { enumFlag, intFlag, parseCommand } from '../args';
import { ExitCode, UsageError } from '../exit-codes';
import { formatBytes, formatDuration } from '../format';
import { ProgressReporter } from '../progress';
import type { CommandContext } from './context';

const transferFlags = {
  'target-kbps': { type: 'string' },
  'min-kbps': { type: 'string' },
  'rate-policy': { type: 'string' },
  'datagram-bytes': { type: 'string' },
  'http-fallback': { type: 'string' },
} as const;

export const uploadUsage = `slip upload <path…> s3://bucket/prefix [--target-kbps N] [--min-kbps N] [--rate-policy fixed|high|fair|low]
                  [--datagram-bytes 1200..9000] [--http-fallback true|false|force]
  Files are stored under prefix/<name>; a folder under prefix/<folder>/… (symlinks inside folders are skipped).
  Ctrl-C stops; running the same command again continues the same transfer.`;

export const downloadUsage = `slip download s3://bucket/key-or-prefix <dir> [--target-kbps N] [--min-kbps N] [--rate-policy P]
                  [--http-fallback true|false|force]
  s3://b/photos/2026 lands as <dir>/2026 (an object) or <dir>/2026/… (a prefix).`;

/** At most this many per-file errors are printed; the rest are counted (all are in --json output). */
const maxFileErrorsPrinted = 20;

function transferOptions(values: Record<string, string | boolean | undefined>): TransferOptions {
  const target = intFlag('target-kbps', values['target-kbps'] as string | undefined, 1, maxRateKbps);
  const min = intFlag('min-kbps', values['min-kbps'] as string | undefined, 0, maxRateKbps);
  const policy = enumFlag('rate-policy', values['rate-policy'] as string | undefined, ratePolicySchema.options);
  const datagramBytes = intFlag('datagram-bytes', values['datagram-bytes'] as string | undefined, minDatagramBytes, maxDatagramBytes);
  // Default: the bucket's setting. true: HTTPS takes over when UDP is blocked or lost; force: HTTPS only.
  const fallback = enumFlag('http-fallback', values['http-fallback'] as string | undefined, ['true', 'false', 'force'] as const);
  if (target !== undefined && min !== undefined && min > target) throw new UsageError('--min-kbps must not exceed --target-kbps');
  return {
    ...(target !== undefined ? { targetRateKbps: target } : {}),
    ...(min !== undefined ? { minRateKbps: min } : {}),
    ...(policy !== undefined ? { ratePolicy: policy } : {}),
    ...(datagramBytes !== undefined ? { datagramBytes } : {}),
    ...(fallback !== undefined ? { httpFallback: fallback === 'force' ? 'force' : fallback === 'true' } : {}),
  };
}

function clientFor(ctx: CommandContext, globals: { endpoint: string | undefined; apiKey: string | undefined }): TransferClient {
  return new TransferClient({
    endpoint: globals.endpoint,
    apiKey: globals.apiKey,
    env: ctx.io.env,
    cwd: ctx.io.cwd,
    ...(ctx.deps.sessionRunner ? { sessionRunner: ctx.deps.sessionRunner } : {}),
    ...(ctx.deps.fetch ? { fetch: ctx.deps.fetch } : {}),
  });
}

export async function uploadCommand(ctx: CommandContext): Promise<number> {
  const { globals, values, positionals } = parseCommand(ctx.argv, transferFlags, 1);
  if (globals.help) return help(ctx, uploadUsage);
  if (positionals.length < 2) throw new UsageError(`name what to upload and where:\n  ${uploadUsage}`);
  const destination = positionals[positionals.length - 1]!;
  if (!destination.startsWith('s3://')) throw new UsageError(`the last argument must be the destination s3://bucket/prefix, got "${destination}"`);
  const options = transferOptions(values);
  const sources = positionals.slice(0, -1).map((p) => resolve(ctx.io.cwd, p));
  const transfer = await clientFor(ctx, globals).upload(sources, destination, options);
  return follow(ctx, globals.json, transfer, destination);
}

export async function downloadCommand(ctx: CommandContext): Promise<number> {
  const { globals, values, positionals } = parseCommand(ctx.argv, transferFlags, 1);
  if (globals.help) return help(ctx, downloadUsage);
  if (positionals.length !== 2) throw new UsageError(`name one source and one folder:\n  ${downloadUsage}`);
  const [source, dir] = positionals as [string, string];
  if (!source.startsWith('s3://')) throw new UsageError(`the first argument must be the source s3://bucket/key-or-prefix, got "${source}"`);
  const options = transferOptions(values);
  const transfer = await clientFor(ctx, globals).download(source, resolve(ctx.io.cwd, dir), options);
  return follow(ctx, globals.json, transfer, source);
}

function help(ctx: CommandContext, usage: string): number {
  ctx.io.stdout.write(`${usage}\n`);
  return ExitCode.ok;
}

/** Reports a running transfer until it ends or Ctrl-C; returns the exit code. */
async function follow(ctx: CommandContext, jsonFlag: boolean, transfer: Transfer, remote: string): Promise<number> {
  const { io } = ctx;
  const json = jsonFlag || !io.stdout.isTTY;
  const reporter = new ProgressReporter(io, { json, bar: !jsonFlag && io.stderr.isTTY === true, label: transfer.direction });
  const start = transfer.progress;
  reporter.event('started', {
    transferId: transfer.id,
    transferIds: transfer.transferIds,
    direction: transfer.direction,
    bucket: transfer.bucket,
    remote,
    resumed: transfer.resumed,
    filesTotal: start.filesTotal,
    bytesTotal: start.bytesTotal,
    skipped: transfer.skipped,
  });
  if (!json) {
    const what = transfer.direction === 'upload' ? `${start.filesTotal} files, ${formatBytes(start.bytesTotal ?? 0)}` : remote;
    io.stderr.write(`${transfer.direction} ${transfer.id}${transfer.resumed ? ' (continuing an earlier run)' : ''}: ${what}\n`);
    if (transfer.skipped.length > 0) io.stderr.write(`skipped ${transfer.skipped.length} entries that are not regular files (e.g. ${transfer.skipped[0]!.localPath}: ${transfer.skipped[0]!.reason})\n`);
  }
  transfer.on('status', (s) => reporter.onStatus(s));
  transfer.on('progress', (p) => reporter.onProgress(p));
  transfer.on('transport', (change) => {
    reporter.event('transport', { ...change });
    if (!json) {
      reporter.clear();
      io.stderr.write(`switched to ${change.transport === 'http' ? 'HTTPS' : 'UDP'}: ${change.reason}\n`);
    }
  });

  let unsubscribe: () => void = () => undefined;
  const interrupted = new Promise<'interrupted'>((done) => {
    unsubscribe = io.onInterrupt(() => done('interrupted'));
  });
  const outcome = await Promise.race([transfer.done, interrupted]);
  unsubscribe();
  if (outcome === 'interrupted') {
    // No cancel: the transfer stays open on the service and the journal lets a re-run continue it.
    reporter.clear();
    reporter.event('interrupted', { transferId: transfer.id });
    io.stderr.write(`interrupted: run the same command again to continue transfer ${transfer.id}\n`);
    return ExitCode.interrupted;
  }
  return report(ctx, json, reporter, outcome);
}

function report(ctx: CommandContext, json: boolean, reporter: ProgressReporter, result: TransferResult): number {
  const { io } = ctx;
  // The last frame shows the average rate: the session's last sample means little once it is over.
  const averageKbps = result.elapsedMs > 0 ? Math.round((result.bytesDone * 8) / result.elapsedMs) : 0;
  reporter.finish({ ...result, rateKbps: averageKbps });
  reporter.event('result', { ...result });
  if (result.status === 'COMPLETED') {
    if (!json) {
      io.stdout.write(
        `${result.id}: ${result.filesDone} files, ${formatBytes(result.bytesDone)} in ${formatDuration(result.elapsedMs / 1000)}\n`,
      );
    }
    return ExitCode.ok;
  }
  const why = result.error ? `${result.error.code}: ${result.error.message}` : result.status.toLowerCase();
  io.stderr.write(`transfer ${result.id} ${result.status === 'CANCELED' ? 'was canceled' : 'failed'}: ${why}\n`);
  for (const e of result.fileErrors.slice(0, maxFileErrorsPrinted)) io.stderr.write(`  ${e.path}: ${e.code}: ${e.message}\n`);
  if (result.fileErrors.length > maxFileErrorsPrinted) io.stderr.write(`  … and ${result.fileErrors.length - maxFileErrorsPrinted} more\n`);
  return ExitCode.transferFailed;
}
