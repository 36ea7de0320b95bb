import {
  bucketNameProblem,
  bucketPreferencesPatchSchema,
  httpFallbackSchema,
  maxRateKbps,
  ratePolicySchema,
  transportSchema,
  type BucketPreferencesPatch,
} from '../../../contracts';
import type { BucketPreferencesResponse } from '../../sdk/api';
import { enumFlag, intFlag, parseCommand } from '../args';
import { ExitCode, UsageError } from '../exit-codes';
import { formatRateKbps, formatTable } from '../format';
import { apiFor, printJson, printLine, showHelp, type CommandContext } from './context';

export const prefsUsage = `slip prefs get <bucket>
slip prefs set <bucket> [--upload-target-kbps N] [--upload-min-kbps N] [--download-target-kbps N] [--download-min-kbps N]
                        [--upload-transport standard|high-speed] [--download-transport standard|high-speed]
                        [--rate-policy fixed|high|fair|low] [--http-fallback true|false|force]
  set changes only the fields given (admin scope needed).`;

const setFlags = {
  'upload-target-kbps': { type: 'string' },
  'upload-min-kbps': { type: 'string' },
  'download-target-kbps': { type: 'string' },
  'download-min-kbps': { type: 'string' },
  'upload-transport': { type: 'string' },
  'download-transport': { type: 'string' },
  'rate-policy': { type: 'string' },
  'http-fallback': { type: 'string' },
} as const;

type SetValues = { [K in keyof typeof setFlags]?: string };

function direction(values: SetValues, side: 'upload' | 'download'): NonNullable<BucketPreferencesPatch['upload']> | undefined {
  const target = intFlag(`${side}-target-kbps`, values[`${side}-target-kbps`], 1, maxRateKbps);
  const min = intFlag(`${side}-min-kbps`, values[`${side}-min-kbps`], 0, maxRateKbps);
  const transport = enumFlag(`${side}-transport`, values[`${side}-transport`], transportSchema.options);
  const patch = {
    ...(transport !== undefined ? { defaultTransport: transport } : {}),
    ...(target !== undefined ? { targetRateKbps: target } : {}),
    ...(min !== undefined ? { minRateKbps: min } : {}),
  };
  return Object.keys(patch).length > 0 ? patch : undefined;
}

/** Flags → a preferences patch, checked with the API's own schema before anything is sent. */
export function patchFromFlags(values: SetValues): BucketPreferencesPatch {
  const upload = direction(values, 'upload');
  const download = direction(values, 'download');
  const ratePolicy = enumFlag('rate-policy', values['rate-policy'], ratePolicySchema.options);
  const httpFallback = enumFlag('http-fallback', values['http-fallback'], httpFallbackSchema.options);
  const patch: BucketPreferencesPatch = {
    ...(upload ? { upload } : {}),
    ...(download ? { download } : {}),
    ...(ratePolicy ? { ratePolicy } : {}),
    ...(httpFallback ? { httpFallback } : {}),
  };
  if (Object.keys(patch).length === 0) throw new UsageError(`name at least one preference to set:\n${prefsUsage}`);
  const parsed = bucketPreferencesPatchSchema.safeParse(patch);
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return parsed.data;
}

function show(ctx: CommandContext, json: boolean, response: BucketPreferencesResponse): void {
  if (json) return printJson(ctx, response);
  const p = response.preferences;
  const side = (d: typeof p.upload) => `${d.defaultTransport}, target ${formatRateKbps(d.targetRateKbps)}, min ${formatRateKbps(d.minRateKbps)}`;
  const rows = [
    ['bucket', response.bucket],
    ['upload', side(p.upload)],
    ['download', side(p.download)],
    ['rate policy', p.ratePolicy],
    ['http fallback', p.httpFallback],
    ['updated', response.updatedAt ?? 'never (defaults)'],
  ];
  printLine(ctx, formatTable(['PREFERENCE', 'VALUE'], rows));
}

function bucketArg(positionals: string[]): string {
  const [bucket, extra] = positionals;
  if (bucket === undefined) throw new UsageError(`name the bucket:\n${prefsUsage}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}":\n${prefsUsage}`);
  const problem = bucketNameProblem(bucket);
  if (problem) throw new UsageError(`"${bucket}" is not a bucket name: it ${problem}`);
  return bucket;
}

export async function prefsCommand(ctx: CommandContext, sub: string | undefined): Promise<number> {
  if (sub === 'get') {
    const { globals, positionals } = parseCommand(ctx.argv, {}, 2);
    if (globals.help) return showHelp(ctx, prefsUsage);
    const bucket = bucketArg(positionals);
    show(ctx, globals.json, await apiFor(ctx, globals).getPreferences(bucket));
    return ExitCode.ok;
  }
  if (sub === 'set') {
    const { globals, values, positionals } = parseCommand(ctx.argv, setFlags, 2);
    if (globals.help) return showHelp(ctx, prefsUsage);
    const bucket = bucketArg(positionals);
    const patch = patchFromFlags(values);
    show(ctx, globals.json, await apiFor(ctx, globals).patchPreferences(bucket, patch));
    return ExitCode.ok;
  }
  const { globals } = parseCommand(ctx.argv, setFlags, 1);
  if (globals.help && sub === undefined) return showHelp(ctx, prefsUsage);
  throw new UsageError(`slip prefs ${sub === undefined ? 'needs' : `has no "${sub}":`} get or set:\n${prefsUsage}`);
}
