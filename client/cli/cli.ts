import { SlipstreamApiError } from '../sdk/errors';
import { findCommand } from './args';
import { agentCommand, agentUsage } from './commands/agent';
import { doctorCommand, doctorUsage } from './commands/doctor';
import type { CliDeps, CommandContext } from './commands/context';
import { lsCommand, lsUsage } from './commands/ls';
import { prefsCommand, prefsUsage } from './commands/prefs';
import { downloadCommand, downloadUsage, uploadCommand, uploadUsage } from './commands/transfer';
import { ExitCode, UsageError, exitCodeFor } from './exit-codes';
import type { CliIo } from './io';

export const usage = `slip: high-speed transfers to and from Slipstream buckets

${uploadUsage}
${downloadUsage}
${lsUsage}
${prefsUsage}
${doctorUsage}
${agentUsage}

Global flags: --endpoint URL, --api-key KEY, --json (one JSON object, or JSON lines for transfers), -h/--help
Config: flags, then SLIPSTREAM_ENDPOINT / SLIPSTREAM_API_KEY, then $SLIPSTREAM_CONFIG or ~/.config/slipstream/config.json,
then .slipstream/credentials.json of a local stack in this folder or above.
Exit codes: 0 ok, 1 unexpected, 2 usage, 3 config/auth, 4 not found, 5 refused by policy, 6 network, 7 transfer failed, 130 interrupted.`;

/** Runs one command line; returns the exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo, deps: CliDeps = {}): Promise<number> {
  const ctx: CommandContext = { io, argv, deps };
  const json = argv.includes('--json');
  try {
    const [command, sub] = findCommand(argv);
    switch (command) {
      case 'upload':
        return await uploadCommand(ctx);
      case 'download':
        return await downloadCommand(ctx);
      case 'ls':
        return await lsCommand(ctx);
      case 'prefs':
        return await prefsCommand(ctx, sub);
      case 'doctor':
        return await doctorCommand(ctx);
      case 'agent':
        return await agentCommand(ctx);
      case 'help':
        io.stdout.write(`${usage}\n`);
        return ExitCode.ok;
      case undefined:
        if (argv.includes('--help') || argv.includes('-h')) {
          io.stdout.write(`${usage}\n`);
          return ExitCode.ok;
        }
        throw new UsageError('name a command: upload, download, ls, prefs, doctor, agent (slip --help)');
      default:
        throw new UsageError(`unknown command "${command}": use upload, download, ls, prefs, doctor or agent (slip --help)`);
    }
  } catch (error) {
    const code = exitCodeFor(error);
    const message = describe(error);
    io.stderr.write(`slip: ${message}\n`);
    if (error instanceof UsageError) io.stderr.write('run slip --help for usage\n');
    if (json) {
      const errorCode = error instanceof SlipstreamApiError ? error.code : error instanceof Error ? error.name : 'Error';
      io.stdout.write(`${JSON.stringify({ error: { code: errorCode, message, exitCode: code } })}\n`);
    }
    return code;
  }
}

/** The message, plus the cause's for errors that wrap one (a missing session module, a bug). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return cause && !error.message.includes(cause) && exitCodeFor(error) === ExitCode.unexpected ? `${error.message} (${cause})` : error.message;
}
