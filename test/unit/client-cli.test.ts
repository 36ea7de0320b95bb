import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../client/cli/args';
import { clockCheck } from '../../client/cli/commands/doctor';
import { patchFromFlags } from '../../client/cli/commands/prefs';
import { ExitCode, TransferFailedError, UsageError, exitCodeFor } from '../../client/cli/exit-codes';
import { etaSeconds, formatBytes, formatDuration, formatProgressLine, formatRateKbps, formatTable, maskSecret } from '../../client/cli/format';
import type { CliIo } from '../../client/cli/io';
import { ProgressReporter } from '../../client/cli/progress';
import {
  SlipstreamApiError,
  SlipstreamConfigError,
  SlipstreamInputError,
  SlipstreamNetworkError,
} from '../../client/sdk/errors';

describe('progress formatting', () => {
  it('formats bytes, rates and durations', () => {
    expect([formatBytes(0), formatBytes(1023), formatBytes(1536), formatBytes(5 * 1024 ** 3)]).toEqual(['0 B', '1023 B', '1.5 KiB', '5.0 GiB']);
    expect([formatRateKbps(850), formatRateKbps(12_500), formatRateKbps(1_250_000)]).toEqual(['850 kbit/s', '12.5 Mbit/s', '1.25 Gbit/s']);
    expect([formatDuration(0), formatDuration(42), formatDuration(725), formatDuration(11_049), formatDuration(400 * 3600)]).toEqual([
      '0:00',
      '0:42',
      '12:05',
      '3:04:09',
      '> 99h',
    ]);
  });

  it('computes the ETA from the rate in kilobits', () => {
    // 8,000 kbit/s = 1,000,000 bytes/s; 3 MB left → 3 s.
    expect(etaSeconds({ bytesDone: 1_000_000, bytesTotal: 4_000_000, rateKbps: 8000 })).toBe(3);
    expect(etaSeconds({ bytesDone: 0, bytesTotal: null, rateKbps: 8000 })).toBeUndefined();
    expect(etaSeconds({ bytesDone: 0, bytesTotal: 10, rateKbps: 0 })).toBeUndefined();
  });

  it('draws a bar that fits the terminal', () => {
    const progress = { bytesDone: 512 * 1024 ** 2, bytesTotal: 1024 ** 3, rateKbps: 80_000, filesDone: 3, filesTotal: 10, transport: 'udp' as const };
    const line = formatProgressLine(progress, 100, 'upload');
    expect(line).toMatch(/^upload \[#+\.+\] +50\.0%  512\.0 MiB\/1\.0 GiB  80\.0 Mbit\/s  ETA 0:54  3\/10 files$/);
    expect(line.length).toBeLessThanOrEqual(100);
    expect(formatProgressLine(progress, 60).length).toBeLessThanOrEqual(60);
    expect(formatProgressLine(progress, 40).length).toBeLessThan(40);
    const unknown = formatProgressLine({ bytesDone: 10, bytesTotal: null, rateKbps: 0, filesDone: 0, filesTotal: null, transport: 'udp' as const }, 80);
    expect(unknown).toContain('?%');
    expect(unknown).toContain('ETA --:--');
    expect(unknown).toContain('0/? files');
  });

  it('reports JSON lines at most once per interval and redraws the bar on stderr', () => {
    const out: string[] = [];
    const err: string[] = [];
    let now = 0;
    const io: CliIo = {
      stdout: { write: (t: string) => out.push(t) },
      stderr: { write: (t: string) => err.push(t), isTTY: true, columns: 80 },
      env: {},
      cwd: '/',
      onInterrupt: () => () => undefined,
    };
    const reporter = new ProgressReporter(io, { json: true, bar: true, label: 'upload', now: () => now });
    const p = (bytesDone: number) => ({ bytesDone, bytesTotal: 100, rateKbps: 8, filesDone: 0, filesTotal: 1, transport: 'udp' as const });
    reporter.onStatus('RUNNING');
    reporter.onProgress(p(10));
    now = 50;
    reporter.onProgress(p(20));
    now = 1000;
    reporter.onProgress(p(30));
    reporter.finish(p(100));
    const events = out.map((l) => JSON.parse(l) as { event: string; bytesDone?: number });
    expect(events.map((e) => [e.event, e.bytesDone])).toEqual([
      ['status', undefined],
      ['progress', 10],
      ['progress', 30],
    ]);
    expect(err.filter((l) => l.startsWith('\r'))).toHaveLength(3); // 10, 30 and the final frame; 20 was within 100 ms
    expect(err.at(-2)).toContain('100.0%');
    expect(err.at(-1)).toBe('\n');
  });

  it('formats tables and masks secrets', () => {
    expect(formatTable(['A', 'BB'], [['xxx', 'y']])).toBe('A    BB\nxxx  y');
    expect(maskSecret('sk_0123456789abcdef_secret')).toBe('sk_0123…');
    expect(maskSecret('short')).toBe('…');
  });
});

describe('exit codes', () => {
  it.each([
    [new UsageError('x'), ExitCode.usage],
    [new SlipstreamInputError('bad url'), ExitCode.usage],
    [new SlipstreamConfigError('no key'), ExitCode.configOrAuth],
    [new SlipstreamApiError(401, 'Unauthorized', 'x'), ExitCode.configOrAuth],
    [new SlipstreamApiError(403, 'Forbidden', 'x'), ExitCode.configOrAuth],
    [new SlipstreamApiError(404, 'NoSuchBucket', 'x'), ExitCode.notFound],
    [new SlipstreamApiError(404, 'NoSuchTransfer', 'x'), ExitCode.notFound],
    [new SlipstreamApiError(409, 'BucketImmutable', 'x'), ExitCode.refused],
    [new SlipstreamApiError(409, 'TransferNotActive', 'x'), ExitCode.refused],
    [new SlipstreamApiError(400, 'HttpFallbackDisabled', 'x'), ExitCode.refused],
    [new SlipstreamApiError(400, 'InvalidObjectKey', 'x'), ExitCode.usage],
    [new SlipstreamApiError(503, 'ImmutabilityUnknown', 'x'), ExitCode.network],
    [new SlipstreamApiError(500, 'InternalError', 'x'), ExitCode.unexpected],
    [new SlipstreamApiError(200, 'InvalidResponse', 'x'), ExitCode.unexpected],
    [new SlipstreamNetworkError('refused'), ExitCode.network],
    [new TransferFailedError('x'), ExitCode.transferFailed],
    [new TypeError('bug'), ExitCode.unexpected],
    ['a string', ExitCode.unexpected],
  ])('%o → %i', (error, code) => expect(exitCodeFor(error)).toBe(code));
});

describe('command lines', () => {
  it('takes global flags anywhere and refuses unknown ones as usage errors', () => {
    const parsed = parseCommand(['--json', 'ls', '--active', '--endpoint', 'http://x', '--api-key=sk_1'], { active: { type: 'boolean' } }, 1);
    expect(parsed.globals).toEqual({ endpoint: 'http://x', apiKey: 'sk_1', json: true, help: false });
    expect(parsed.values.active).toBe(true);
    expect(parsed.positionals).toEqual([]);
    expect(() => parseCommand(['ls', '--nope'], {}, 1)).toThrow(UsageError);
  });

  it('turns prefs flags into a validated patch', () => {
    expect(patchFromFlags({ 'upload-target-kbps': '5000', 'download-transport': 'standard', 'http-fallback': 'force' })).toEqual({
      upload: { targetRateKbps: 5000 },
      download: { defaultTransport: 'standard' },
      httpFallback: 'force',
    });
    expect(() => patchFromFlags({})).toThrow(/at least one preference/);
    expect(() => patchFromFlags({ 'upload-target-kbps': 'fast' })).toThrow(/whole number/);
    expect(() => patchFromFlags({ 'rate-policy': 'greedy' })).toThrow(/fixed, high, fair, low/);
    expect(() => patchFromFlags({ 'upload-target-kbps': '0' })).toThrow(UsageError);
  });
});

describe('doctor clock check', () => {
  it('is ok within 30 s and warns beyond, saying which way', () => {
    const server = new Date('2026-01-01T00:00:00Z');
    expect(clockCheck(server, server.getTime() + 2000)).toMatchObject({ status: 'ok', detail: "within 2 s of the API's clock" });
    expect(clockCheck(server, server.getTime() - 45_000)).toMatchObject({ status: 'warn' });
    expect(clockCheck(server, server.getTime() - 45_000).detail).toContain('45 s behind');
    expect(clockCheck(undefined, 0).status).toBe('skip');
  });
});
