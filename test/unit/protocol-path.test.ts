import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Connection, type ConnectionEvent } from '../../protocol/connection';
import { PacketType, parseClientHello } from '../../protocol/packet';

const MiB = 1024 * 1024;
const attacker = 'attacker:1';

interface Datagram {
  atMs: number;
  to: 'server' | 'client' | 'attacker';
  from: string;
  bytes: Buffer;
}

/**
 * Two cores over a 5 ms link behind a NAT: the server's datagrams reach the client only at its current
 * address, and those to `attacker:1` are counted. `onClientPacket` may send copies of a client packet
 * from the attacker's address, ahead of the original. One side sends `sizeBytes` to the other.
 */
function transfer(options: {
  direction: 'upload' | 'download';
  sizeBytes: number;
  untilMs: number;
  rebindAtMs?: number;
  onClientPacket?: (bytes: Buffer, nowMs: number) => boolean;
  maxCopies?: number;
}) {
  const secret = randomBytes(32);
  const client = Connection.connect(0, 'server:1', { token: 't'.repeat(40), secret, connectionId: randomBytes(8), nonce: randomBytes(16), config: { maxRateKbps: 100_000 } });
  let server: Connection | undefined;
  let clientAddress = 'client:1';
  const data = randomBytes(options.sizeBytes);
  const got = Buffer.alloc(options.sizeBytes);
  let delivered = 0;
  let written = 0;
  const queue: Datagram[] = [];
  const events: { server: ConnectionEvent[]; client: ConnectionEvent[] } = { server: [], client: [] };
  const toAttacker = { datagrams: 0, bytes: 0 };
  const fromAttacker = { datagrams: 0, bytes: 0 };
  const sender = () => (options.direction === 'upload' ? client : server);
  const receiver = () => (options.direction === 'upload' ? server : client);

  for (let now = 0; now <= options.untilMs && delivered < data.length; now += 1) {
    if (options.rebindAtMs !== undefined && now === options.rebindAtMs) clientAddress = 'client:2';
    for (const d of queue.filter((q) => q.atMs <= now)) {
      queue.splice(queue.indexOf(d), 1);
      if (d.to === 'attacker') {
        toAttacker.datagrams += 1;
        toAttacker.bytes += d.bytes.length;
      } else if (d.to === 'client') client.handleDatagram(now, 'server:1', d.bytes);
      else {
        if (!server) {
          const hello = parseClientHello(d.bytes);
          if (hello) server = Connection.accept(now, d.from, hello, d.bytes.length, { secret, connectionId: randomBytes(8), nonce: randomBytes(16), config: { maxRateKbps: 100_000 } });
        }
        server?.handleDatagram(now, d.from, d.bytes);
      }
    }
    client.handleTimeout(now);
    server?.handleTimeout(now);
    for (let t = client.pollTransmit(now); t; t = client.pollTransmit(now)) {
      if ((t.bytes[0]! & 0xf0) === PacketType.short && options.onClientPacket?.(t.bytes, now) && fromAttacker.datagrams < (options.maxCopies ?? Infinity)) {
        fromAttacker.datagrams += 1;
        fromAttacker.bytes += t.bytes.length;
        queue.push({ atMs: now + 4, to: 'server', from: attacker, bytes: Buffer.from(t.bytes) });
      }
      queue.push({ atMs: now + 5, to: 'server', from: clientAddress, bytes: t.bytes });
    }
    if (server) {
      for (let t = server.pollTransmit(now); t; t = server.pollTransmit(now)) {
        // The NAT maps only the client's current address.
        if (t.remote === clientAddress) queue.push({ atMs: now + 5, to: 'client', from: 'server:1', bytes: t.bytes });
        else if (t.remote === attacker) queue.push({ atMs: now + 5, to: 'attacker', from: 'server:1', bytes: t.bytes });
      }
    }
    for (const [name, conn] of [['server', server], ['client', client]] as const) {
      if (!conn) continue;
      for (let e = conn.pollEvent(); e; e = conn.pollEvent()) {
        events[name].push(e);
        if (conn === receiver() && e.type === 'connected') conn.setMaxData(data.length);
        if (conn === receiver() && e.type === 'data') {
          e.bytes.copy(got, e.offset);
          delivered += e.bytes.length;
        }
      }
    }
    const s = sender();
    if (s?.isConnected && written < data.length) written += s.write(written, data.subarray(written));
  }
  return { client, server: server!, events, toAttacker, fromAttacker, complete: delivered === data.length && got.equals(data) };
}

const migrations = (events: ConnectionEvent[]) => events.filter((e) => e.type === 'migrated');

describe('path validation', () => {
  it('a copied packet sent first from another address does not redirect the data; that address gets at most 3× what it sent', () => {
    let seen = 0;
    const run = transfer({
      direction: 'download',
      sizeBytes: 2 * MiB,
      untilMs: 10_000,
      // One client packet (an ACK) once data flows.
      onClientPacket: () => (seen += 1) === 50,
    });
    expect(run.fromAttacker.datagrams).toBe(1);
    expect(run.complete).toBe(true);
    expect(migrations(run.events.server)).toEqual([]);
    expect(run.server.remoteAddress).toBe('client:1');
    // The copy was newest, so the attacker's address was challenged, and that is all it got.
    expect(run.toAttacker.datagrams).toBeGreaterThan(0);
    expect(run.toAttacker.bytes).toBeLessThanOrEqual(3 * run.fromAttacker.bytes);
  });

  it('copies of many packets: no redirect, at most 3× back, and the transfer completes', () => {
    let seen = 0;
    const run = transfer({ direction: 'download', sizeBytes: 2 * MiB, untilMs: 10_000, onClientPacket: () => (seen += 1) % 3 === 0 });
    expect(run.fromAttacker.datagrams).toBeGreaterThan(20);
    expect(run.complete).toBe(true);
    expect(migrations(run.events.server)).toEqual([]);
    expect(run.server.remoteAddress).toBe('client:1');
    expect(run.toAttacker.bytes).toBeLessThanOrEqual(3 * run.fromAttacker.bytes);
  });

  for (const direction of ['upload', 'download'] as const) {
    it(`a real NAT rebinding mid-${direction} is validated and followed; the transfer completes`, () => {
      const run = transfer({ direction, sizeBytes: 4 * MiB, untilMs: 20_000, rebindAtMs: 150 });
      expect(run.complete).toBe(true);
      expect(migrations(run.events.server)).toEqual([{ type: 'migrated', remote: 'client:2' }]);
      expect(run.server.remoteAddress).toBe('client:2');
      expect(migrations(run.events.client)).toEqual([]);
    });
  }

  it("a copy of the client's PATH_RESPONSE sent from another address validates nothing; the real path still wins", () => {
    const run = transfer({
      direction: 'upload',
      sizeBytes: 4 * MiB,
      untilMs: 20_000,
      rebindAtMs: 150,
      // The client's answer is its only 42-byte packet (header 17 + PATH_RESPONSE 9 + tag 16): copy the first.
      onClientPacket: (bytes, nowMs) => nowMs >= 150 && bytes.length === 42,
      maxCopies: 1,
    });
    expect(run.fromAttacker.datagrams).toBe(1);
    expect(run.complete).toBe(true);
    expect(migrations(run.events.server)).toEqual([{ type: 'migrated', remote: 'client:2' }]);
    expect(run.toAttacker.bytes).toBeLessThanOrEqual(3 * run.fromAttacker.bytes);
  });
});
