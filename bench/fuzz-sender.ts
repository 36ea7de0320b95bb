/**
 * The fuzzer's sending side as its own process (bench/fuzz.ts starts it with an IPC channel), so
 * generating and sending hostile datagrams does not share an event loop or a CPU with the honest client.
 *
 * parent → child: { type: 'capture', capture } (new packets from the relay), { type: 'start', … }, { type: 'stop' }
 * child → parent: { type: 'progress', sent }, { type: 'done', stats }
 */
import { FuzzGenerator, Prng, sendFuzz, type Capture, type FuzzTokens } from './fuzz-lib';

interface StartMessage {
  type: 'start';
  host: string;
  port: number;
  count: number;
  seed: number;
  ratePerSecond: number;
  tokens: FuzzTokens;
}
type Message = StartMessage | { type: 'capture'; capture: Capture } | { type: 'stop' };

const buffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const revive = (c: Capture): Capture => ({
  toEngine: c.toEngine.map(buffer),
  fromEngine: c.fromEngine.map(buffer),
  hellos: c.hellos.map(buffer),
  serverConnectionIds: c.serverConnectionIds.map(buffer),
});

let generator: FuzzGenerator | undefined;
let latest: Capture | undefined;
const abort = new AbortController();

process.on('message', (message: Message) => {
  if (message.type === 'capture') {
    latest = revive(message.capture);
    generator?.update(latest);
  } else if (message.type === 'stop') {
    abort.abort();
  } else if (message.type === 'start') {
    generator = new FuzzGenerator(new Prng(message.seed), message.tokens);
    if (latest) generator.update(latest);
    let lastReport = 0;
    void sendFuzz({
      host: message.host,
      port: message.port,
      count: message.count,
      generator,
      ratePerSecond: message.ratePerSecond,
      signal: abort.signal,
      onProgress: (sent) => {
        const now = performance.now();
        if (now - lastReport < 250) return;
        lastReport = now;
        process.send?.({ type: 'progress', sent });
      },
    }).then(
      (stats) => process.send?.({ type: 'done', stats }, () => process.disconnect?.()),
      (error: unknown) => process.send?.({ type: 'failed', error: String(error) }, () => process.exit(1)),
    );
  }
});
process.on('disconnect', () => process.exit(0));
