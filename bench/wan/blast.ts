/**
 * A paced UDP sender for measuring the emulator's loss: run one in each namespace, each bound to the
 * port the other sends to (so nothing answers with ICMP), and read the drops off the emulator's
 * counters. (iperf3's UDP test needs its own UDP handshake to survive the loss, which fails at 10 %.)
 *
 *   blast.ts --bind IP --port N --peer-host IP --pps N --bytes N --seconds S
 */
import { createSocket } from 'node:dgram';
import { emit, flags, required, requiredNumber, runChild, waitForGo } from './child-io';

const args = flags(process.argv.slice(2));
/** Packets go out in batches every tick: timers are not fine enough for one packet at a time. */
const tickMs = 5;

runChild(async () => {
  const port = requiredNumber(args, 'port');
  const peerHost = required(args, 'peer-host');
  const pps = requiredNumber(args, 'pps');
  const seconds = requiredNumber(args, 'seconds');
  const payload = Buffer.alloc(requiredNumber(args, 'bytes') - 28); // IP bytes minus IPv4 + UDP headers
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(port, required(args, 'bind'), resolve));
  socket.on('message', () => undefined);
  let sendErrors = 0;
  socket.on('error', () => (sendErrors += 1));
  emit({ type: 'ready' });
  await waitForGo();
  const total = Math.round(pps * seconds);
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * pps));
    while (sent < due) {
      socket.send(payload, port, peerHost);
      sent += 1;
    }
    await new Promise((resolve) => setTimeout(resolve, tickMs));
  }
  // Let the last sends leave the socket.
  await new Promise((resolve) => setTimeout(resolve, 200));
  socket.close();
  emit({ type: 'result', sent, sendErrors, seconds: (performance.now() - t0) / 1000 });
});
