import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './exit-codes';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const globalOptions = {
  endpoint: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export interface GlobalFlags {
  endpoint: string | undefined;
  apiKey: string | undefined;
  json: boolean;
  help: boolean;
}

/** The command word(s): the first positionals, wherever global flags sit. */
export function findCommand(argv: readonly string[]): string[] {
  const { positionals } = parseArgs({ args: [...argv], options: globalOptions, strict: false, allowPositionals: true });
  return positionals;
}

export interface ParsedCommand<O extends Options> {
  globals: GlobalFlags;
  values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };
  positionals: string[];
}

/** Strict parse of one command's flags plus the global ones; `words` command words are dropped. */
export function parseCommand<O extends Options>(argv: readonly string[], options: O, words: number): ParsedCommand<O> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...globalOptions, ...options }, strict: true, allowPositionals: true });
  } catch (error) {
    // Node's message goes on to explain `--`; the first sentence is the useful part.
    throw new UsageError((error as Error).message.split(/\.\s/)[0]!);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  return {
    globals: {
      endpoint: v.endpoint as string | undefined,
      apiKey: v['api-key'] as string | undefined,
      json: v.json === true,
      help: v.help === true,
    },
    values: parsed.values as ParsedCommand<O>['values'],
    positionals: parsed.positionals.slice(words),
  };
}

/** A whole number flag within bounds, or a usage error naming the flag. */
export function intFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** One of `allowed`, or a usage error listing them. */
export function enumFlag<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}
