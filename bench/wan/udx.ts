/**
 * The udx-native baseline: one reliable udx stream (native code, BBR-style congestion control) carrying
 * `--bytes` from the client namespace to the server namespace. Run as a pair, server first:
 *
 *   udx.ts server --bind IP --port N --peer-host IP --peer-port N
 *   udx.ts client --bind IP --port N --peer-host IP --peer-port N --bytes N --deadline-s S
 *
 * udx has no handshake: each side connects its stream (ids 1 = server, 2 = client) to the other's
 * address. The client writes on `go` and is done when the server, having read the end of the stream,
 * ends its side; the server reports what it received (also on SIGTERM, after a deadline).
 */
import { randomFillSync } from 'node:crypto';
import UDX, { type UdxSocket } from 'udx-native';
import { emit, flags, required, requiredNumber, runChild, waitForGo } from './child-io';

const chunkBytes = 256 * 1024;
const socketBufferBytes = 8 * 1024 * 1024;
const [mode, ...rest] = process.argv.slice(2);
const args = flags(rest);

function open(id: number, remoteId: number): { socket: UdxSocket; stream: ReturnType<UDX['createStream']> } {
  const udx = new UDX();
  const socket = udx.createSocket();
  socket.bind(requiredNumber(args, 'port'), required(args, 'bind'));
  // Best effort: the namespace's net.core.rmem_max caps it.
  try {
    socket.setRecvBufferSize(socketBufferBytes);
    socket.setSendBufferSize(socketBufferBytes);
  } catch {
    // keep the default
  }
  const stream = udx.createStream(id);
  stream.connect(socket, remoteId, requiredNumber(args, 'peer-port'), required(args, 'peer-host'));
  return { socket, stream };
}

async function server(): Promise<void> {
  const { socket, stream } = open(1, 2);
  let bytes = 0;
  let firstMs: number | undefined;
  let lastMs = 0;
  const report = (completed: boolean) => emit({ type: 'result', bytes, firstByteMs: firstMs ?? null, lastByteMs: lastMs, completed });
  process.once('SIGTERM', () => {
    report(false);
    process.exit(0);
  });
  stream.on('data', (chunk: Buffer) => {
    const now = performance.now();
    firstMs ??= now;
    lastMs = now;
    bytes += chunk.length;
  });
  // The client destroys its stream at its deadline, which resets ours: what arrived until then counts.
  const ended = new Promise<boolean>((resolve) => {
    stream.once('end', () => resolve(true));
    stream.once('error', () => resolve(false));
  });
  emit({ type: 'ready' });
  const completed = await ended;
  report(completed);
  if (!completed) return;
  stream.end();
  // Let the end reach the client; it may be lost, so do not wait for the close handshake for ever.
  await new Promise<void>((resolve) => {
    stream.once('close', () => resolve());
    setTimeout(resolve, 10_000).unref();
  });
  await socket.close();
}

async function client(): Promise<void> {
  const total = requiredNumber(args, 'bytes');
  const deadlineMs = requiredNumber(args, 'deadline-s') * 1000;
  const { socket, stream } = open(2, 1);
  const chunk = randomFillSync(Buffer.allocUnsafe(chunkBytes));
  let failed: Error | undefined;
  stream.on('error', (error: Error) => (failed = error));
  const peerEnded = new Promise<void>((resolve) => stream.once('end', () => resolve()));
  stream.on('data', () => undefined); // the server sends nothing but its end; reading lets 'end' fire
  emit({ type: 'ready' });
  await waitForGo();
  const t0 = performance.now();
  const deadline = new Promise<'deadline'>((resolve) => setTimeout(() => resolve('deadline'), deadlineMs).unref());
  let written = 0;
  let completed = false;
  let lastProgress = t0;
  const writing = (async () => {
    while (written < total && !failed) {
      const length = Math.min(chunkBytes, total - written);
      written += length;
      if (!stream.write(length === chunkBytes ? chunk : chunk.subarray(0, length))) {
        await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
      }
      const now = performance.now();
      if (now - lastProgress >= 1000) {
        lastProgress = now;
        emit({ type: 'progress', elapsedMs: now - t0, bytesWritten: written });
      }
      if (now - t0 > deadlineMs) return;
    }
    stream.end();
    await peerEnded;
    completed = true;
  })();
  await Promise.race([writing, deadline]);
  const seconds = (performance.now() - t0) / 1000;
  if (failed) throw failed;
  emit({ type: 'result', completed, seconds, bytesWritten: written });
  stream.destroy();
  await socket.close().catch(() => undefined);
}

runChild(async () => {
  if (mode === 'server') await server();
  else if (mode === 'client') await client();
  else throw new Error('usage: udx.ts server|client --bind IP --port N --peer-host IP --peer-port N [--bytes N --deadline-s S]');
});
