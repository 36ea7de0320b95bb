import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TransferSpec } from '../../contracts';
import { addressKey, ConnectionDriver, monotonicMs } from '../../core/udp-driver';
import { localPathFor } from './files';
import { CloseCode, Connection, type ConnectionConfig, type ConnectionEvent, type ConnectionStats } from '../../protocol/connection';
import { RangeSet } from '../../protocol/ranges';
import {
  compositeChecksum,
  decodeControl,
  encodeControl,
  maxFilesPerManifestMessage,
  partDigest,
  partSizeFor,
  StreamLayout,
  type ControlMessage,
  type FileEntry,
} from '../../protocol/transfer';
import {
  maxDatagramBytes,
  minDatagramBytes,
  type SessionCallbacks,
  type SessionFileError,
  type SessionJob,
  type SessionProgress,
  type SessionResult,
  type UdpCheck,
} from './session-types';

/** Read size for uploads; a part is hashed as its bytes go by. */
const readChunkBytes = 1024 * 1024;
/** Download receive window: bytes the engine may send beyond what is on disk. */
const downloadWindowBytes = 64 * 1024 * 1024;
const progressIntervalMs = 250;

interface Session {
  socket: Socket;
  driver: ConnectionDriver;
  closed: Promise<{ code: number; reason: string; byPeer: boolean }>;
  /** This side's CLOSE went out (or the session closed): how it is closing. */
  closing: Promise<{ code: number; reason: string; byPeer: boolean }>;
  /** Queues a control message and lets the driver send it. */
  send(message: ControlMessage): void;
}

/** A client connection to `remote` with the spec's token and session secret, a fresh connection id and nonce. */
export function connectionFor(spec: TransferSpec, remote: string, config?: Partial<ConnectionConfig>): Connection {
  return Connection.connect(performance.now(), remote, {
    token: spec.token,
    secret: Buffer.from(spec.slipstream.session_secret, 'base64url'),
    connectionId: randomBytes(8),
    nonce: randomBytes(16),
    ...(config ? { config } : {}),
  });
}

async function openSession(
  spec: TransferSpec,
  onEvent: (event: ConnectionEvent) => void,
  options: SessionOptions & { handshakeTimeoutMs?: number } = {},
  /** Whether this side waits for the engine now (data or an ACK outstanding): only then is quiet a sign. */
  expecting: (conn: Connection) => boolean = () => false,
): Promise<Session> {
  const { address, family } = await lookup(spec.remote_host);
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', recvBufferSize: 8 * 1024 * 1024, sendBufferSize: 8 * 1024 * 1024 });
  await new Promise<void>((done) => socket.bind(0, done));
  // Connected: the kernel drops datagrams from anyone else, and sends skip a lookup per datagram.
  await new Promise<void>((done) => socket.connect(spec.fasp_port, address, done));
  // A connected socket reports ICMP "port unreachable" (engine restarting) as a send error: the
  // protocol's own timers decide whether the peer is gone, so errors here are not fatal.
  socket.on('error', () => undefined);
  const remote = addressKey(address, spec.fasp_port);
  const conn = connectionFor(spec, remote, {
    ratePolicy: spec.rate_policy,
    maxRateKbps: Math.max(1, spec.target_rate_kbps),
    minRateKbps: Math.min(spec.min_rate_kbps, spec.target_rate_kbps),
    ...(options.handshakeTimeoutMs ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
    ...(options.datagramBytes ? { maxDatagramBytes: options.datagramBytes } : {}),
    ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
  });
  let settle: (value: { code: number; reason: string; byPeer: boolean }) => void = () => undefined;
  let settleClosing: (value: { code: number; reason: string; byPeer: boolean }) => void = () => undefined;
  const closed = new Promise<{ code: number; reason: string; byPeer: boolean }>((r) => (settle = r));
  const closing = new Promise<{ code: number; reason: string; byPeer: boolean }>((r) => (settleClosing = r));
  const driver = new ConnectionDriver(
    conn,
    socket,
    (event) => {
      if (event.type === 'closing') settleClosing({ code: event.code, reason: event.reason, byPeer: false });
      if (event.type === 'closed') {
        settleClosing(event);
        settle(event);
      }
      onEvent(event);
    },
    monotonicMs,
    true,
  );
  socket.on('message', (bytes, rinfo) => driver.input(bytes, addressKey(rinfo.address, rinfo.port)));
  driver.service();
  if (options.idleTimeoutMs) watchProgress(conn, driver, options.idleTimeoutMs, expecting, closed);
  const send = (message: ControlMessage) => {
    conn.sendControl(encodeControl(message));
    driver.kick();
  };
  return { socket, driver, closed, closing, send };
}

/** SLIPSTREAM_TRACE=1: the rate controller's state on stderr every 200 ms (bench:wan --trace, debugging). */
const traceIntervalMs = 200;
function traceLine(s: ConnectionStats, sinceMs: number): void {
  process.stderr.write(
    `trace ${((performance.now() - sinceMs) / 1000).toFixed(2)} s ${s.rateMode} rate ${s.rateKbps} kbit/s queue ${s.queueDelayMs.toFixed(1)} ms ` +
      `srtt ${s.srttMs.toFixed(1)} ms in flight ${s.bytesInFlight} B acked ${s.dataBytesAcked} B lost ${s.packetsLost}\n`,
  );
}

/**
 * What both directions do around the transfer itself: pause/resume handles, cancel on abort, progress
 * every 250 ms, and, once every file is done (or the session ends), a clean close. Resolves with how
 * the session closed.
 */
async function supervise(
  session: Session,
  callbacks: SessionCallbacks,
  control: { pause(): void; resume(): void; progress(): SessionProgress; finished: Promise<void> },
): Promise<{ code: number; reason: string; byPeer: boolean }> {
  const conn = session.driver.conn;
  callbacks.attach({
    pause: () => {
      control.pause();
      callbacks.onStatus('PAUSED');
    },
    resume: () => {
      control.resume();
      callbacks.onStatus('RUNNING');
    },
  });
  const onAbort = () => {
    conn.close(CloseCode.canceled, 'canceled by the user');
    session.driver.kick();
  };
  callbacks.signal.addEventListener('abort', onAbort, { once: true });
  const progress = setInterval(() => callbacks.onProgress(control.progress()), progressIntervalMs);
  const traceSinceMs = performance.now();
  const trace = process.env.SLIPSTREAM_TRACE ? setInterval(() => traceLine(conn.stats(), traceSinceMs), traceIntervalMs) : undefined;
  await Promise.race([control.finished, session.closed]);
  if (!conn.isClosed) {
    conn.close(CloseCode.done, 'transfer complete');
    session.driver.service();
  }
  // Once our CLOSE is out (for `done`, after the engine acknowledged our last control messages) the
  // outcome is known; the close handshake, one more round trip, finishes in the background.
  const closing = await session.closing;
  clearInterval(progress);
  clearInterval(trace);
  callbacks.signal.removeEventListener('abort', onAbort);
  void session.closed.then(() => session.socket.close());
  return closing;
}

/** `Code: message` as the engine words a refusal; a plain reason otherwise. */
function closeError(spec: TransferSpec, code: number, reason: string): { code: string; message: string } {
  if (code === CloseCode.handshakeTimeout) {
    return {
      code: 'UdpUnreachable',
      message: `no answer over UDP from ${spec.remote_host}:${spec.fasp_port} (${reason}); UDP may be blocked on the way`,
    };
  }
  const match = /^([A-Za-z]+): (.*)$/s.exec(reason);
  return match ? { code: match[1]!, message: match[2]! } : { code: code === CloseCode.idleTimeout ? 'ConnectionLost' : 'SessionClosed', message: reason };
}

/**
 * Runs one transfer over UDP with the protocol core. Uploads read local files, hash each part on the
 * way (the checksum covers parts the engine already holds, which are read but not sent) and wait for
 * the engine to commit every object; downloads write into `.part` files and rename them once verified.
 */
export async function runUdpSession(spec: TransferSpec, job: SessionJob, callbacks: SessionCallbacks): Promise<SessionResult> {
  if (job.datagramBytes !== undefined && !(job.datagramBytes >= minDatagramBytes && job.datagramBytes <= maxDatagramBytes)) {
    throw new RangeError(`datagramBytes must be ${minDatagramBytes}..${maxDatagramBytes}`);
  }
  const options: SessionOptions & { handshakeTimeoutMs?: number } = {
    ...(job.datagramBytes ? { datagramBytes: job.datagramBytes } : {}),
    ...(job.udpHandshakeTimeoutMs ? { handshakeTimeoutMs: job.udpHandshakeTimeoutMs } : {}),
    ...(job.udpSilenceTimeoutMs ? { idleTimeoutMs: job.udpSilenceTimeoutMs } : {}),
  };
  return job.direction === 'upload' ? runUpload(spec, job.files, callbacks, options) : runDownload(spec, job.paths, job.localRoot, callbacks, options);
}

/**
 * The idle timeout sees any packet from the engine; a path blocked one way still carries the engine's
 * keepalives. So the session also counts as lost when nothing of ours is acknowledged and no data
 * arrives for `silenceMs` while this side waits for the engine.
 */
function watchProgress(conn: Connection, driver: ConnectionDriver, silenceMs: number, expecting: (conn: Connection) => boolean, closed: Promise<unknown>): void {
  let last = -1;
  let lastAtMs = performance.now();
  const timer = setInterval(() => {
    const stats = conn.stats();
    const progress = stats.packetsAcked + stats.dataBytesDelivered;
    const now = performance.now();
    if (progress !== last || !conn.isConnected || !expecting(conn)) {
      last = progress;
      lastAtMs = now;
    } else if (now - lastAtMs >= silenceMs) {
      conn.abandon(CloseCode.idleTimeout, `nothing acknowledged or delivered by the engine for ${silenceMs} ms`);
      driver.service();
    }
  }, Math.min(1_000, silenceMs / 4));
  void closed.then(() => clearInterval(timer));
}

/** `idleTimeoutMs`: silence after which the session counts as lost (shorter when HTTPS can take over). */
type SessionOptions = { datagramBytes?: number; idleTimeoutMs?: number };

async function runUpload(
  spec: TransferSpec,
  files: Extract<SessionJob, { direction: 'upload' }>['files'],
  callbacks: SessionCallbacks,
  options: SessionOptions,
): Promise<SessionResult> {
  const layout = new StreamLayout();
  for (const file of files) layout.add({ index: file.index, path: file.path, size: file.size });
  const done = new Set<number>();
  const fileErrors: SessionFileError[] = [];
  let have = new RangeSet();
  let haveKnown = false;
  let haveReceived: () => void = () => undefined;
  const haveArrived = new Promise<void>((r) => (haveReceived = r));
  let connectedNow: () => void = () => undefined;
  const connected = new Promise<void>((r) => (connectedNow = r));
  /**
   * Before `have` the engine's ServerHello credit lets data go with the manifest, a round trip sooner:
   * only up to it, since what the engine already holds is not known yet (a resume re-sends at most that).
   */
  let earlyLimit = 0;
  /** The end of what went out on that credit alone, from offset 0: bytes `have` lists there were sent again. */
  let earlyEnd = 0;
  const earlyHeldBytes = () => earlyEnd - have.gaps(0, earlyEnd).reduce((sum, [s, e]) => sum + e - s, 0);
  let writable: () => void = () => undefined;
  let finished: () => void = () => undefined;
  const allFinished = new Promise<void>((r) => (finished = r));
  const checkFinished = () => {
    if (done.size + fileErrors.length >= files.length) finished();
  };

  const session = await openSession(spec, (event) => {
    if (event.type === 'connected') {
      earlyLimit = session.driver.conn.sendLimit;
      connectedNow();
      callbacks.onStatus('RUNNING');
      for (let i = 0; i < files.length || i === 0; i += maxFilesPerManifestMessage) {
        const batch = files.slice(i, i + maxFilesPerManifestMessage).map(({ index, path, size }) => ({ index, path, size }));
        send({ t: 'files', files: batch, final: i + maxFilesPerManifestMessage >= files.length });
      }
    } else if (event.type === 'writable') {
      writable();
    } else if (event.type === 'control') {
      const message = decodeControl(event.message);
      if (message?.t === 'have') {
        have = new RangeSet();
        for (const [s, e] of message.ranges) have.add(s, e);
        haveKnown = true;
        haveReceived();
      } else if (message?.t === 'done') {
        done.add(message.index);
        checkFinished();
      } else if (message?.t === 'file-error') {
        fileErrors.push({ path: files[message.index]?.path ?? String(message.index), code: message.code, message: message.message });
        checkFinished();
      }
    }
  }, options, (c) => c.stats().bytesInFlight > 0);
  const conn = session.driver.conn;
  const send = session.send;

  const feed = async () => {
    await Promise.race([connected, session.closed]);
    if (conn.isClosed) return;
    if (files.length === 0) finished();
    for (const file of files) {
      const start = layout.start(file.index);
      const partSize = partSizeFor(file.size);
      const digests: Uint8Array[] = [];
      const handle = await open(file.localPath, 'r');
      try {
        for (let partStart = 0; partStart < file.size || digests.length === 0; partStart += partSize) {
          const partBytes = Buffer.allocUnsafe(Math.min(partSize, file.size - partStart));
          for (let at = 0; at < partBytes.length; at += readChunkBytes) {
            const length = Math.min(readChunkBytes, partBytes.length - at);
            const { bytesRead } = await handle.read(partBytes, at, length, partStart + at);
            if (bytesRead !== length) throw new Error(`${file.localPath} changed size while being sent`);
            const chunkStart = start + partStart + at;
            const chunkEnd = chunkStart + length;
            for (let from = chunkStart; from < chunkEnd; ) {
              if (!haveKnown && from >= earlyLimit) await Promise.race([haveArrived, session.closed]);
              if (conn.isClosed) return;
              const early = !haveKnown;
              const to = early ? Math.min(chunkEnd, earlyLimit) : chunkEnd;
              for (const [s, e] of have.gaps(from, to)) {
                let offset = s;
                while (offset < e) {
                  if (conn.isClosed) return;
                  const taken = conn.write(offset, partBytes.subarray(offset - start - partStart, e - start - partStart));
                  offset += taken;
                  // Chosen before `have` came, this range goes out whole even if `have` arrives meanwhile.
                  if (early) earlyEnd = offset;
                  session.driver.kick();
                  if (offset < e) await new Promise<void>((r) => (writable = r));
                }
              }
              from = to;
            }
          }
          digests.push(partDigest(partBytes));
        }
      } finally {
        await handle.close();
      }
      send({ t: 'sum', index: file.index, sha256: compositeChecksum(digests) });
    }
    conn.endWrites();
  };
  const bytesDoneNow = () => Math.min(layout.totalBytes, Math.max(0, have.total() + conn.stats().dataBytesAcked - earlyHeldBytes()));
  // A session that ends while the feeder waits for room must wake it, or the file stays open for ever.
  void session.closed.then(() => writable());
  const feeding = feed().catch((error: unknown) => {
    conn.close(CloseCode.internalError, `could not read local files: ${(error as Error).message}`);
    session.driver.kick();
    throw error;
  });

  const closed = await supervise(session, callbacks, {
    pause: () => conn.pauseSending(true),
    resume: () => {
      conn.pauseSending(false);
      session.driver.kick();
    },
    progress: () => {
      const stats = conn.stats();
      return { bytesDone: bytesDoneNow(), bytesTotal: layout.totalBytes, rateKbps: stats.rateKbps, filesDone: done.size, filesTotal: files.length };
    },
    finished: allFinished,
  });
  const feedError = await feeding.then(() => undefined, (error: unknown) => error as Error);
  const bytesDone = layout.totalBytes;
  callbacks.onProgress({ bytesDone: done.size === files.length ? bytesDone : bytesDoneNow(), bytesTotal: bytesDone, rateKbps: 0, filesDone: done.size, filesTotal: files.length });
  if (callbacks.signal.aborted) return { status: 'CANCELED', bytesDone, filesDone: done.size, fileErrors };
  if (done.size === files.length) return { status: 'COMPLETED', bytesDone, filesDone: done.size, fileErrors };
  const error = feedError ? { code: 'LocalReadError', message: feedError.message } : fileErrors.length > 0 ? { code: 'FilesFailed', message: `${fileErrors.length} file(s) failed` } : closeError(spec, closed.code, closed.reason);
  return { status: 'FAILED', bytesDone: 0, filesDone: done.size, fileErrors, error };
}


async function runDownload(spec: TransferSpec, paths: string[], localRoot: string, callbacks: SessionCallbacks, options: SessionOptions): Promise<SessionResult> {
  const layout = new StreamLayout();
  const handles = new Map<number, FileHandle>();
  const written = new RangeSet();
  const sums = new Map<number, string>();
  const done = new Set<number>();
  const fileErrors: SessionFileError[] = [];
  let manifestFinal = false;
  let downloadPaused = false;
  let finished: () => void = () => undefined;
  const allFinished = new Promise<void>((r) => (finished = r));
  let writing = Promise.resolve();

  const session = await openSession(spec, (event) => {
    if (event.type === 'connected') {
      callbacks.onStatus('RUNNING');
      send({ t: 'get', paths, final: true });
    } else if (event.type === 'data') {
      const { offset, bytes } = event;
      writing = writing.then(() => writeData(offset, bytes));
    } else if (event.type === 'control') {
      const message = decodeControl(event.message);
      if (!message) return;
      if (message.t === 'files') onFiles(message.files, message.final);
      else if (message.t === 'sum') {
        sums.set(message.index, message.sha256);
        writing = writing.then(() => verify(message.index));
      } else if (message.t === 'file-error') {
        fileErrors.push({ path: layout.files[message.index]?.path ?? String(message.index), code: message.code, message: message.message });
        checkFinished();
      }
    }
  }, options, () => !downloadPaused && !(manifestFinal && done.size + fileErrors.length >= layout.files.length));
  const conn = session.driver.conn;
  const send = session.send;
  const checkFinished = () => {
    if (manifestFinal && done.size + fileErrors.length >= layout.files.length) finished();
  };
  const grant = () => {
    conn.setMaxData((written.min === 0 ? written.range(0)[1] : 0) + downloadWindowBytes);
    session.driver.kick();
  };

  const onFiles = (files: readonly FileEntry[], final: boolean) => {
    for (const file of files) layout.add(file);
    if (!final) return;
    manifestFinal = true;
    writing = writing.then(async () => {
      for (const file of layout.files) {
        const target = localPathFor(localRoot, file.path);
        await mkdir(dirname(target), { recursive: true });
        handles.set(file.index, await open(`${target}.part`, 'w+'));
      }
      send({ t: 'have', ranges: [] });
      grant();
      checkFinished();
    });
  };

  const writeData = async (offset: number, bytes: Buffer) => {
    let at = offset;
    while (at < offset + bytes.length) {
      const index = layout.fileAt(at);
      if (index === undefined) throw new Error(`data at ${at} is in no file`);
      const fileStart = layout.start(index);
      const fileEnd = fileStart + layout.files[index]!.size;
      const end = Math.min(fileEnd, offset + bytes.length);
      await handles.get(index)!.write(bytes, at - offset, end - at, at - fileStart);
      at = end;
    }
    written.add(offset, offset + bytes.length);
    grant();
  };

  const verify = async (index: number) => {
    const file = layout.files[index]!;
    const start = layout.start(index);
    if (!written.covers(start, start + file.size)) {
      // The sum can overtake the last bytes: check again when they are on disk.
      setTimeout(() => (writing = writing.then(() => verify(index))), 20);
      return;
    }
    const handle = handles.get(index)!;
    const partSize = partSizeFor(file.size);
    const digests: Uint8Array[] = [];
    for (let partStart = 0; partStart < file.size || digests.length === 0; partStart += partSize) {
      const buffer = Buffer.allocUnsafe(Math.min(partSize, file.size - partStart));
      await handle.read(buffer, 0, buffer.length, partStart);
      digests.push(partDigest(buffer));
    }
    await handle.close();
    handles.delete(index);
    const target = localPathFor(localRoot, file.path);
    if (compositeChecksum(digests) !== sums.get(index)) {
      fileErrors.push({ path: file.path, code: 'ChecksumMismatch', message: `${file.path}: the bytes received do not match the object's checksum` });
      send({ t: 'file-error', index, code: 'ChecksumMismatch', message: 'checksum mismatch on the client' });
    } else {
      await rename(`${target}.part`, target);
      done.add(index);
      send({ t: 'done', index });
    }
    checkFinished();
  };

  const startedAt = performance.now();
  const closed = await supervise(session, callbacks, {
    pause: () => {
      downloadPaused = true;
      send({ t: 'pause' });
    },
    resume: () => {
      downloadPaused = false;
      send({ t: 'resume' });
    },
    progress: () => ({
      bytesDone: written.total(),
      bytesTotal: manifestFinal ? layout.totalBytes : null,
      rateKbps: Math.round((conn.stats().dataBytesDelivered * 8) / Math.max(1, performance.now() - startedAt)),
      filesDone: done.size,
      filesTotal: manifestFinal ? layout.files.length : null,
    }),
    finished: allFinished,
  });
  await writing.catch(() => undefined);
  for (const handle of handles.values()) await handle.close().catch(() => undefined);
  const bytesDone = written.total();
  callbacks.onProgress({ bytesDone, bytesTotal: layout.totalBytes, rateKbps: 0, filesDone: done.size, filesTotal: layout.files.length });
  if (callbacks.signal.aborted) return { status: 'CANCELED', bytesDone, filesDone: done.size, fileErrors };
  if (manifestFinal && done.size === layout.files.length) return { status: 'COMPLETED', bytesDone, filesDone: done.size, fileErrors };
  return {
    status: 'FAILED',
    bytesDone,
    filesDone: done.size,
    fileErrors,
    error: fileErrors.length > 0 ? { code: 'FilesFailed', message: `${fileErrors.length} file(s) failed` } : closeError(spec, closed.code, closed.reason),
    // What is on disk, so HTTPS can fetch only the rest.
    ...(manifestFinal
      ? { continuation: { files: layout.files.map((f) => ({ index: f.index, path: f.path, size: f.size, start: layout.start(f.index) })), written, done: new Set(done) } }
      : {}),
  };
}

/** For `slip doctor`: a handshake only; the session is closed as canceled so nothing is left running. */
export const checkUdp: UdpCheck = async (spec, { timeoutMs }) => {
  let connected = false;
  const session = await openSession(
    spec,
    (event) => {
      if (event.type === 'connected') {
        connected = true;
        session.driver.conn.close(CloseCode.canceled, 'doctor: reachability check only');
        session.driver.kick();
      }
    },
    { handshakeTimeoutMs: timeoutMs },
  );
  const closed = await session.closed;
  session.socket.close();
  if (connected) return { ok: true, detail: `handshake with ${spec.remote_host}:${spec.fasp_port} over UDP succeeded` };
  return { ok: false, detail: closeError(spec, closed.code, closed.reason).message };
};

