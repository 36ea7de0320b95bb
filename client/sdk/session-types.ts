import type { TransferSpec, TransferStatus } from '../../contracts';
import type { RangeSet } from '../../protocol/ranges';

/**
 * The seam between the SDK and the UDP session (`client/sdk/session.ts`, written separately). The SDK
 * owns the API calls, file discovery, events and the journal; the session owns the socket and the
 * protocol core. Keep this file minimal: it is what both sides agree on.
 */

export interface UploadFile {
  /** Position in the stream (manifest order), from 0. */
  index: number;
  /** Key below the spec's `slipstream.key_prefix`. */
  path: string;
  size: number;
  localPath: string;
}

/** Datagram sizes a client may choose: 1200 fits every path; up to 9000 on jumbo-frame networks and loopback. */
export const minDatagramBytes = 1200;
export const maxDatagramBytes = 9000;

export type SessionJob = (
  | { direction: 'upload'; files: UploadFile[] }
  /** Keys or prefixes below the spec's prefix; files are written below `localRoot` by their relative key. */
  | { direction: 'download'; paths: string[]; localRoot: string }
) & {
  /** UDP payload size of what this side sends (default 1400, like Aspera's packet size setting). */
  datagramBytes?: number;
  /** No answer to the handshake within this long: UDP counts as unreachable (default 10 s). */
  udpHandshakeTimeoutMs?: number;
  /** Nothing heard from the engine for this long mid-transfer: the session counts as lost (default 30 s). */
  udpSilenceTimeoutMs?: number;
};

/** A download's state when its UDP session ended early: what is on disk, so HTTPS fetches only the rest. */
export interface DownloadContinuation {
  /** The engine's manifest; `start` is the file's first byte in the stream. */
  files: { index: number; path: string; size: number; start: number }[];
  /** Stream ranges written into the `.part` files. */
  written: RangeSet;
  /** Files verified and renamed into place. */
  done: ReadonlySet<number>;
}

export interface SessionProgress {
  bytesDone: number;
  /** `null` until a download's manifest has arrived. */
  bytesTotal: number | null;
  rateKbps: number;
  filesDone: number;
  filesTotal: number | null;
}

/** What the session gives the SDK once it can act on them; the SDK replays a pause asked for earlier. */
export interface SessionHandles {
  pause(): void;
  resume(): void;
}

export interface SessionCallbacks {
  onProgress(progress: SessionProgress): void;
  /** `RUNNING`, `PAUSED`, … as the session sees them; the SDK decides the final status from the result. */
  onStatus(status: TransferStatus): void;
  /** Called once, as soon as `pause()`/`resume()` can be honoured. */
  attach(handles: SessionHandles): void;
  /** Aborted on `cancel()`: the session closes and resolves with `CANCELED`. */
  signal: AbortSignal;
}

export interface SessionFileError {
  path: string;
  code: string;
  message: string;
}

export interface SessionResult {
  status: 'COMPLETED' | 'FAILED' | 'CANCELED';
  bytesDone: number;
  filesDone: number;
  fileErrors: SessionFileError[];
  error?: { code: string; message: string };
  continuation?: DownloadContinuation;
}

export type SessionRunner = (spec: TransferSpec, job: SessionJob, callbacks: SessionCallbacks) => Promise<SessionResult>;

export interface UdpCheckResult {
  ok: boolean;
  detail: string;
}

/** For `slip doctor`: can a session with this spec reach the engine over UDP? */
export type UdpCheck = (spec: TransferSpec, options: { timeoutMs: number }) => Promise<UdpCheckResult>;
