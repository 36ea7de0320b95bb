const byteUnits = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'] as const;

/** Decimal units, as file managers show sizes: 1536 → "1.5 KB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < byteUnits.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${byteUnits[unit]}`;
}

/** Kilobits per second (the API's unit) → "850 kbit/s", "12.5 Mbit/s", "1.25 Gbit/s". */
export function formatRateKbps(kbps: number): string {
  if (!Number.isFinite(kbps) || kbps < 0) return '–';
  if (kbps < 1000) return `${Math.round(kbps)} kbit/s`;
  if (kbps < 1_000_000) return `${(kbps / 1000).toFixed(1)} Mbit/s`;
  return `${(kbps / 1_000_000).toFixed(2)} Gbit/s`;
}

/** Seconds → "42 s", "12 min 5 s", "3 h 4 min". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const total = Math.round(seconds);
  if (total < 60) return `${total} s`;
  if (total < 3600) return `${Math.floor(total / 60)} min ${total % 60} s`;
  if (total > 99 * 3600) return 'more than 99 h';
  return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
}

export function formatDate(iso: string | null): string {
  if (!iso) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '–' : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Megabits per second as typed in the options form ↔ the API's kilobits per second. */
export const mbpsToKbps = (mbps: number) => Math.round(mbps * 1000);
export const kbpsToMbps = (kbps: number) => kbps / 1000;
