import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultAgentPort } from '../../agent/schemas';
import { listenAgent, newPairingToken, normalizeOrigin } from '../../agent/server';
import { Shares } from '../../agent/shares';
import { AgentTransfers } from '../../agent/transfers';
import { SlipstreamInputError } from '../../sdk/errors';
import { intFlag, parseCommand } from '../args';
import { ExitCode, UsageError } from '../exit-codes';
import { printJson, printLine, showHelp, type CommandContext } from './context';

export const agentUsage = `slip agent [--share DIR]… [--downloads DIR] [--allow-origin ORIGIN]… [--port N]
  The local agent for the web console's High speed transfers, on http://127.0.0.1:55002. The console can
  upload only files inside the folders shared with --share, and high-speed downloads land in --downloads
  (default ~/Downloads/slipstream). Pages may use it only from the allowed origins (the local stack's
  console, http://127.0.0.1:8080 and http://localhost:8080, plus --allow-origin and SLIPSTREAM_AGENT_ORIGINS,
  comma-separated) and only with the pairing token it prints. Ctrl-C stops it.`;

const agentFlags = {
  share: { type: 'string', multiple: true },
  downloads: { type: 'string' },
  'allow-origin': { type: 'string', multiple: true },
  port: { type: 'string' },
} as const;

export const defaultAgentOrigins = ['http://127.0.0.1:8080', 'http://localhost:8080'];

const listOf = (value: string | boolean | (string | boolean)[] | undefined): string[] =>
  (Array.isArray(value) ? value : value === undefined ? [] : [value]).filter((v): v is string => typeof v === 'string');

export async function agentCommand(ctx: CommandContext): Promise<number> {
  const { globals, values, positionals } = parseCommand(ctx.argv, agentFlags, 1);
  if (globals.help) return showHelp(ctx, agentUsage);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}": share folders with --share DIR`);
  const raw = values as Record<string, string | boolean | (string | boolean)[] | undefined>;
  const port = intFlag('port', raw.port as string | undefined, 1, 65_535) ?? defaultAgentPort;
  const fromEnv = (ctx.io.env.SLIPSTREAM_AGENT_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  let origins: string[];
  try {
    origins = [...new Set([...defaultAgentOrigins, ...listOf(raw['allow-origin']), ...fromEnv].map(normalizeOrigin))];
  } catch (error) {
    throw new UsageError((error as SlipstreamInputError).message);
  }
  const shares = await Shares.open(listOf(raw.share).map((dir) => resolve(ctx.io.cwd, dir))).catch((error: unknown) => {
    throw new UsageError((error as Error).message);
  });
  const downloadsDir = resolve(ctx.io.cwd, (raw.downloads as string | undefined) ?? join(homedir(), 'Downloads', 'slipstream'));
  const token = newPairingToken();
  const transfers = new AgentTransfers({ client: { journal: false, ...(ctx.deps.sessionRunner ? { sessionRunner: ctx.deps.sessionRunner } : {}) } });
  const agent = await listenAgent({ port, allowedOrigins: origins, token, shares, downloadsDir, transfers }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') throw new UsageError(`port ${port} is in use (another agent?); stop it or choose --port`);
    throw error;
  });

  if (globals.json) {
    printJson(ctx, { agent: agent.url, token, origins, shares: shares.describe(), downloads: downloadsDir });
  } else {
    const shared = shares.describe();
    printLine(
      ctx,
      [
        `Slipstream agent on ${agent.url}`,
        `  Shared      ${shared.length > 0 ? shared.map((s) => `${s.name} → ${s.folder}`).join('\n              ') : 'nothing yet: start with --share DIR to upload from a folder'}`,
        `  Downloads   ${downloadsDir}`,
        `  Origins     ${origins.join(', ')}`,
        `  Pairing     ${token}`,
        '',
        `Pair the console: open ${origins[0]}/#agent-token=${token}`,
        'or paste the pairing token when the console asks for it. Ctrl-C stops the agent.',
      ].join('\n'),
    );
  }
  await new Promise<void>((stopped) => {
    const off = ctx.io.onInterrupt(() => {
      off();
      stopped();
    });
  });
  await agent.stop();
  return ExitCode.ok;
}
