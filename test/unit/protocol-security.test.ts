import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Connection, type ConnectionConfig } from '../../protocol/connection';
import { parseClientHello } from '../../protocol/packet';

/** Two cores joined by a lossless 5 ms link, with a hook to tamper with or copy each datagram. */
function link(config: Partial<ConnectionConfig> = {}) {
  const secret = randomBytes(32);
  const client = Connection.connect(0, 'server:1', { token: 't'.repeat(40), secret, connectionId: randomBytes(8), nonce: randomBytes(16), config });
  let server: Connection | undefined;
  let clientAddress = 'client:1';
  let now = 0;
  const toServer: Buffer[] = [];
  const run = (untilMs: number, onServerBound?: (bytes: Buffer) => Buffer[]) => {
    while (now < untilMs) {
      now += 1;
      for (let t = client.pollTransmit(now); t; t = client.pollTransmit(now)) {
        toServer.push(t.bytes);
        for (const bytes of onServerBound ? onServerBound(t.bytes) : [t.bytes]) {
          if (!server) {
            const hello = parseClientHello(bytes);
            if (hello) server = Connection.accept(now, clientAddress, hello, bytes.length, { secret, connectionId: randomBytes(8), nonce: randomBytes(16), config });
          }
          server?.handleDatagram(now, clientAddress, bytes);
        }
      }
      if (server) for (let t = server.pollTransmit(now); t; t = server.pollTransmit(now)) client.handleDatagram(now, 'server:1', t.bytes);
      client.handleTimeout(now);
      server?.handleTimeout(now);
    }
  };
  return {
    client,
    server: () => server!,
    run,
    toServer,
    setClientAddress: (address: string) => (clientAddress = address),
  };
}

function drain(conn: Connection) {
  const events = [];
  for (let e = conn.pollEvent(); e; e = conn.pollEvent()) events.push(e);
  return events;
}

describe('protocol security', () => {
  it('drops replayed, forged, truncated and corrupted packets and counts them', () => {
    const l = link();
    l.run(50);
    l.server().setMaxData(1 << 20);
    l.client.write(0, randomBytes(50_000));
    l.run(200, (bytes) => {
      if (bytes[0] === 0x01) return [bytes];
      const corrupted = Buffer.from(bytes);
      corrupted[corrupted.length - 5]! ^= 0x40;
      return [corrupted, bytes, bytes, bytes.subarray(0, 20)];
    });
    const stats = l.server().stats();
    expect(stats.dataBytesDelivered).toBe(50_000);
    expect(stats.droppedReplayed).toBeGreaterThan(10);
    expect(stats.droppedForged).toBeGreaterThan(10);
    expect(stats.droppedMalformed).toBeGreaterThan(10);
  });

  it('sends at most 3× what it received before the client proves it holds the keys', () => {
    const secret = randomBytes(32);
    const hello = Connection.connect(0, 's', { token: 'x'.repeat(100), secret, connectionId: randomBytes(8), nonce: randomBytes(16) }).pollTransmit(0)!.bytes;
    const server = Connection.accept(0, 'c', parseClientHello(hello)!, hello.length, { secret, connectionId: randomBytes(8), nonce: randomBytes(16) });
    server.setMaxData(1 << 20);
    server.sendControl(Buffer.alloc(50_000, 1));
    let sent = 0;
    for (let now = 0; now < 5_000; now += 5) {
      server.handleTimeout(now);
      for (let t = server.pollTransmit(now); t; t = server.pollTransmit(now)) sent += t.bytes.length;
    }
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThanOrEqual(3 * hello.length);
  });

  it('updates keys while a transfer runs', () => {
    const l = link({ packetsPerKey: 100 });
    l.run(50);
    const server = l.server();
    server.setMaxData(1 << 22);
    const data = randomBytes(1_000_000);
    l.client.write(0, data);
    const got = Buffer.alloc(data.length);
    let delivered = 0;
    for (let i = 0; i < 40 && delivered < data.length; i += 1) {
      l.run(50 + (i + 1) * 50);
      for (const e of drain(server)) if (e.type === 'data') {
        e.bytes.copy(got, e.offset);
        delivered += e.bytes.length;
      }
    }
    expect(got.equals(data)).toBe(true);
    expect(l.client.stats().packetsSent).toBeGreaterThan(500);
  });

  it('follows a client whose address changes (NAT rebinding)', () => {
    const l = link();
    l.run(50);
    const server = l.server();
    drain(server);
    l.setClientAddress('client:2');
    l.client.sendControl(Buffer.from('after the move'));
    l.run(100);
    const events = drain(server);
    expect(events).toContainEqual({ type: 'migrated', remote: 'client:2' });
    expect(server.remoteAddress).toBe('client:2');
  });

  it('closes with the reason the peer gave', () => {
    const l = link();
    l.run(50);
    l.server().close(6, 'BucketImmutable: no');
    l.run(100);
    expect(drain(l.client)).toContainEqual({ type: 'closed', code: 6, reason: 'BucketImmutable: no', byPeer: true });
  });
});
