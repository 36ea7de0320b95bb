import type { TransferProgress } from '../sdk/transfer-client';

const byteUnits = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** 1536 → "1.5 KiB"; bytes below 1 KiB are exact. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < byteUnits.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${byteUnits[unit]}`;
}

/** Kilobits per second (the API's unit) → "850 kbit/s", "12.5 Mbit/s", "1.25 Gbit/s". */
export function formatRateKbps(kbps: number): string {
  if (!Number.isFinite(kbps) || kbps < 0) return '?';
  if (kbps < 1000) return `${Math.round(kbps)} kbit/s`;
  if (kbps < 1_000_000) return `${(kbps / 1000).toFixed(1)} Mbit/s`;
  return `${(kbps / 1_000_000).toFixed(2)} Gbit/s`;
}

/** Seconds → "0:42", "12:05", "3:04:09"; beyond 99 hours "> 99h". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const total = Math.round(seconds);
  if (total > 99 * 3600) return '> 99h';
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** Seconds left at the current rate; undefined when it cannot be told (no total, no rate). */
export function etaSeconds(progress: Pick<TransferProgress, 'bytesDone' | 'bytesTotal' | 'rateKbps'>): number | undefined {
  if (progress.bytesTotal === null || progress.rateKbps <= 0) return undefined;
  const bytesPerSecond = (progress.rateKbps * 1000) / 8;
  return Math.max(0, progress.bytesTotal - progress.bytesDone) / bytesPerSecond;
}

/**
 * One progress line that fits `columns`: `[#####.....]  45.2%  1.2 GiB/2.7 GiB  350.0 Mbit/s  ETA 0:42  3/10 files`.
 * The bar takes what the text leaves (at least 10 columns, or it is left out).
 */
export function formatProgressLine(progress: TransferProgress, columns = 80, label = ''): string {
  const known = progress.bytesTotal !== null && progress.bytesTotal > 0;
  const fraction = known ? Math.min(1, progress.bytesDone / progress.bytesTotal!) : progress.bytesTotal === 0 ? 1 : undefined;
  const percent = fraction === undefined ? '   ?%' : `${(fraction * 100).toFixed(1).padStart(5)}%`;
  const bytes = `${formatBytes(progress.bytesDone)}/${progress.bytesTotal === null ? '?' : formatBytes(progress.bytesTotal)}`;
  const eta = etaSeconds(progress);
  const files = `${progress.filesDone}/${progress.filesTotal ?? '?'} files`;
  const text = [percent, bytes, formatRateKbps(progress.rateKbps), `ETA ${eta === undefined ? '--:--' : formatDuration(eta)}`, files].join('  ');
  const prefix = label === '' ? '' : `${label} `;
  const room = columns - prefix.length - text.length - 4;
  if (room < 10) return (prefix + text).slice(0, Math.max(0, columns - 1));
  const width = Math.min(room, 30);
  const filled = fraction === undefined ? 0 : Math.round(fraction * width);
  return `${prefix}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]  ${text}`;
}

/** A plain-text table: columns padded to their widest cell. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

/** "sk_abcd…": enough to tell keys apart, never the secret. */
export function maskSecret(secret: string): string {
  return secret.length <= 8 ? '…' : `${secret.slice(0, 7)}…`;
}
