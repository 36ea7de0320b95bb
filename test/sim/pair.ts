import { randomBytes } from 'node:crypto';
import { Connection, type ConnectionConfig } from '../../protocol/connection';
import { parseClientHello } from '../../protocol/packet';

/** A client and a server core joined through `deliver`, which the link model implements. */
export function connectPair(now: number, secret: Buffer, config: Partial<ConnectionConfig>, rnd: () => Buffer = () => randomBytes(16)) {
  const client = Connection.connect(now, 'server:1', {
    token: 'token-for-test',
    secret,
    connectionId: rnd().subarray(0, 8),
    nonce: rnd(),
    config,
  });
  let server: Connection | undefined;
  const acceptHello = (t: number, bytes: Buffer): Connection | undefined => {
    const hello = parseClientHello(bytes);
    if (!hello) return undefined;
    server ??= Connection.accept(t, 'client:1', hello, bytes.length, { secret, connectionId: rnd().subarray(0, 8), nonce: rnd(), config });
    return server;
  };
  return { client, getServer: () => server, acceptHello };
}
