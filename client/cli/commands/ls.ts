import type { Transfer } from '../../../contracts';
import { parseCommand, intFlag } from '../args';
import { ExitCode, UsageError } from '../exit-codes';
import { formatBytes, formatTable } from '../format';
import { apiFor, printJson, printLine, type CommandContext } from './context';

export const lsUsage = `slip ls [--active | --completed] [--bucket B] [--limit N] [--cursor C]
  Lists transfers (not objects: browse those in the console), newest first.`;

const lsFlags = {
  active: { type: 'boolean' },
  completed: { type: 'boolean' },
  bucket: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
} as const;

function row(t: Transfer): string[] {
  const where = t.key ?? t.keyPrefix;
  const bytes = t.bytesTotal === null ? formatBytes(t.bytesTransferred) : `${formatBytes(t.bytesTransferred)}/${formatBytes(t.bytesTotal)}`;
  return [t.id, t.status, t.direction, t.transport, `${t.bucket}/${where}`, String(t.files), bytes, t.createdAt.replace(/\.\d+Z$/, 'Z')];
}

export async function lsCommand(ctx: CommandContext): Promise<number> {
  const { globals, values, positionals } = parseCommand(ctx.argv, lsFlags, 1);
  if (globals.help) {
    printLine(ctx, lsUsage);
    return ExitCode.ok;
  }
  if (positionals.length > 0) throw new UsageError(`slip ls takes no arguments (got "${positionals[0]}"):\n  ${lsUsage}`);
  if (values.active && values.completed) throw new UsageError('use --active or --completed, not both');
  const state = values.active ? 'active' : values.completed ? 'completed' : 'all';
  const limit = intFlag('limit', values.limit, 1, 1000);
  const { body } = await apiFor(ctx, globals).listTransfers({
    state,
    ...(values.bucket !== undefined ? { bucket: values.bucket } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(values.cursor !== undefined ? { cursor: values.cursor } : {}),
  });
  if (globals.json) {
    printJson(ctx, body);
    return ExitCode.ok;
  }
  if (body.transfers.length === 0) printLine(ctx, `no ${state === 'all' ? '' : `${state} `}transfers`);
  else printLine(ctx, formatTable(['ID', 'STATUS', 'DIR', 'TRANSPORT', 'WHERE', 'FILES', 'BYTES', 'CREATED'], body.transfers.map(row)));
  if (body.nextCursor) ctx.io.stderr.write(`more transfers: slip ls --cursor ${body.nextCursor}\n`);
  return ExitCode.ok;
}
