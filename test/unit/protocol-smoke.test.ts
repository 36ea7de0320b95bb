import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connectPair } from '../sim/pair';
import type { Connection } from '../../protocol/connection';

describe('protocol smoke', () => {
  it('moves 4 MiB over a clean 20 ms link', () => {
    const secret = randomBytes(32);
    const pair = connectPair(0, secret, { maxRateKbps: 200_000 });
    const data = randomBytes(4 * 1024 * 1024);
    const got = Buffer.alloc(data.length);
    let receivedBytes = 0;
    const inflight: { at: number; to: 'c' | 's'; bytes: Buffer }[] = [];
    let now = 0;
    let written = 0;
    let done = false;
    const pump = (conn: Connection, to: 'c' | 's') => {
      for (let t = conn.pollTransmit(now); t; t = conn.pollTransmit(now)) inflight.push({ at: now + 10, to, bytes: t.bytes });
    };
    for (let step = 0; step < 200_000 && !done; step += 1) {
      const server = pair.getServer();
      if (server && server.isConnected && written < data.length) {
        written += server.write(written, data.subarray(written, Math.min(data.length, written + 256 * 1024)));
      }
      pump(pair.client, 's');
      if (server) pump(server, 'c');
      inflight.sort((a, b) => a.at - b.at);
      const timeouts = [pair.client.pollTimeout(), server?.pollTimeout(), inflight[0]?.at].filter((x): x is number => x !== undefined);
      now = Math.max(now, Math.min(...timeouts));
      while (inflight.length && inflight[0]!.at <= now) {
        const p = inflight.shift()!;
        if (p.to === 's') {
          const s = pair.getServer() ?? pair.acceptHello(now, p.bytes);
          s?.handleDatagram(now, 'client:1', p.bytes);
        } else pair.client.handleDatagram(now, 'server:1', p.bytes);
      }
      pair.client.handleTimeout(now);
      server?.handleTimeout(now);
      for (let e = pair.client.pollEvent(); e; e = pair.client.pollEvent()) {
        if (e.type === 'connected') pair.client.setMaxData(16 * 1024 * 1024);
        if (e.type === 'data') {
          e.bytes.copy(got, e.offset);
          receivedBytes += e.bytes.length;
          pair.client.setMaxData(receivedBytes + 16 * 1024 * 1024);
        }
      }
      if (server) for (let e = server.pollEvent(); e; e = server.pollEvent());
      if (receivedBytes === data.length) done = true;
    }
    expect(receivedBytes).toBe(data.length);
    expect(got.equals(data)).toBe(true);
  });
});
