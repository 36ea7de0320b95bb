/**
 * Reads V8 CPU profiles (`node --cpu-prof` files, or `Profiler.stop` from node:inspector) and says where
 * the time went: self time per function and per source file, with idle, GC and "(program)" apart.
 */
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  gcMs: number;
  programMs: number;
  /** Self time by function, busiest first (ms and share of the non-idle time). */
  functions: { name: string; ms: number; share: number }[];
  files: { name: string; ms: number; share: number }[];
}

const meta = new Set(['(idle)', '(garbage collector)', '(program)', '(root)']);

function shortUrl(url: string): string {
  if (!url) return '';
  const clean = url.replace(/^file:\/\//, '');
  const repo = clean.indexOf('/work/main/');
  if (repo >= 0) return clean.slice(repo + '/work/main/'.length);
  const modules = clean.lastIndexOf('node_modules/');
  if (modules >= 0) return clean.slice(modules);
  return clean;
}

export function summarizeProfile(profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; attribute the interval after a sample to it.
  for (let i = 0; i < samples.length; i += 1) {
    const next = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, next));
  }
  let totalUs = 0;
  let idleUs = 0;
  let gcUs = 0;
  let programUs = 0;
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    const name = frame.functionName || '(anonymous)';
    if (name === '(idle)') idleUs += us;
    else if (name === '(garbage collector)') gcUs += us;
    else if (name === '(program)') programUs += us;
    const url = shortUrl(frame.url);
    // tsx runs TypeScript compiled on the fly: its line numbers are not the source's, so only JS files get one.
    const where = !url ? '(native)' : url.endsWith('.ts') ? url : `${url}:${frame.lineNumber + 1}`;
    const key = meta.has(name) ? name : `${name} ${where}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    if (!meta.has(name)) files.set(url || '(native/builtin)', (files.get(url || '(native/builtin)') ?? 0) + us);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const rank = (map: Map<string, number>) =>
    [...map]
      .filter(([name]) => name !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / busyUs }));
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, gcMs: gcUs / 1000, programMs: programUs / 1000, functions: rank(functions), files: rank(files) };
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
}

export function formatSummary(title: string, summary: ProfileSummary, top = 15): string {
  const busy = summary.totalMs - summary.idleMs;
  const lines = [
    `${title}: ${(summary.totalMs / 1000).toFixed(1)} s sampled, busy ${(busy / 1000).toFixed(1)} s (${((busy / Math.max(1, summary.totalMs)) * 100).toFixed(0)} %), ` +
      `GC ${((summary.gcMs / Math.max(1, busy)) * 100).toFixed(1)} % of busy, "(program)" (native, outside JS) ${((summary.programMs / Math.max(1, busy)) * 100).toFixed(1)} % of busy`,
    '',
    `| self % of busy | self ms | function (file) |`,
    `| ---: | ---: | --- |`,
    ...summary.functions.slice(0, top).map((f) => `| ${(f.share * 100).toFixed(1)} | ${f.ms.toFixed(0)} | \`${f.name}\` |`),
    '',
    `| self % of busy | by file |`,
    `| ---: | --- |`,
    ...summary.files.slice(0, 10).map((f) => `| ${(f.share * 100).toFixed(1)} | \`${f.name}\` |`),
  ];
  return lines.join('\n');
}

/** Profiles this process (the client side of a transfer) with the inspector. */
export async function profileThisProcess<T>(work: () => Promise<T>, samplingIntervalUs = 500): Promise<{ value: T; profile: CpuProfile }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  await session.post('Profiler.start');
  try {
    const value = await work();
    const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
    return { value, profile };
  } finally {
    session.disconnect();
  }
}
