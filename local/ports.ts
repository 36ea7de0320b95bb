import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/** Fails with a message that says what to change, instead of a listen() stack trace later. */
export async function assertPortFree(host: string, port: number, what: string, hint: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(new PortInUseError(`${what}: port ${port} on ${host} is already in use (is another Slipstream stack running?). ${hint}`));
      } else if (error.code === 'EADDRNOTAVAIL') {
        reject(new PortInUseError(`${what}: ${host} is not an address of this machine. ${hint}`));
      } else {
        reject(error);
      }
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

export async function assertUdpPortFree(host: string, port: number, what: string, hint: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.close();
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(`${what}: UDP port ${port} on ${host} is already in use (is another Slipstream stack running?). ${hint}`) : error);
    });
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve()));
  });
}

/** A port that was free a moment ago (tests and throwaway services). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
