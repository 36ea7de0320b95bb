import { SlipstreamApi } from '../../sdk/api';
import { requireConfig, resolveConfig, type ResolvedConfig } from '../../sdk/config';
import type { SessionRunner } from '../../sdk/session-types';
import type { GlobalFlags } from '../args';
import type { CliIo } from '../io';

/** What tests may swap when they run the CLI in-process. */
export interface CliDeps {
  sessionRunner?: SessionRunner;
  fetch?: typeof fetch;
}

export interface CommandContext {
  io: CliIo;
  /** The whole command line, command words included. */
  argv: readonly string[];
  deps: CliDeps;
}

export function configFor(ctx: CommandContext, globals: GlobalFlags): ResolvedConfig {
  return resolveConfig({ endpoint: globals.endpoint, apiKey: globals.apiKey, env: ctx.io.env, cwd: ctx.io.cwd });
}

export function apiFor(ctx: CommandContext, globals: GlobalFlags): SlipstreamApi {
  const config = requireConfig(configFor(ctx, globals));
  return new SlipstreamApi({ endpoint: config.endpoint, apiKey: config.apiKey, ...(ctx.deps.fetch ? { fetch: ctx.deps.fetch } : {}) });
}

export function printLine(ctx: CommandContext, text: string): void {
  ctx.io.stdout.write(`${text}\n`);
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Prints a command's usage for --help; exit code 0. */
export function showHelp(ctx: CommandContext, usage: string): number {
  ctx.io.stdout.write(`${usage}\n`);
  return 0;
}
