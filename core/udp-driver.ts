import type { Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { Connection, ConnectionEvent } from '../protocol/connection';

/** `host:port` as the protocol core sees addresses; IPv6 hosts keep their colons. */
export function addressKey(host: string, port: number): string {
  return `${host}:${port}`;
}

export function splitAddress(key: string): { host: string; port: number } {
  const colon = key.lastIndexOf(':');
  return { host: key.slice(0, colon), port: Number(key.slice(colon + 1)) };
}

export const monotonicMs = (): number => performance.now();

/**
 * Drives one sans-IO connection over a UDP socket: feeds it datagrams and timeouts, hands its events to
 * the application, sends what it wants sent and arms one timer at its next deadline. Shared by the
 * engine (many per socket) and the SDK (one).
 */
export class ConnectionDriver {
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Infinity;
  private serviceQueued = false;
  private stopped = false;
  /** The last destination parsed, so a packet train to one peer splits the address once. */
  private destination = { key: '', host: '', port: 0 };

  /**
   * `connected`: the socket is connected to the one peer (the SDK), so sends skip the per-datagram
   * address lookup Node does for unconnected sockets.
   */
  constructor(
    readonly conn: Connection,
    private readonly socket: Socket,
    private readonly onEvent: (event: ConnectionEvent) => void,
    private readonly clock: () => number = monotonicMs,
    private readonly connected = false,
  ) {}

  input(bytes: Buffer, remote: string): void {
    this.conn.handleDatagram(this.clock(), remote, bytes);
    this.service();
  }

  /** Runs `service` soon, once, after the current task: the application calls it after it queued work. */
  kick(): void {
    if (this.serviceQueued || this.stopped) return;
    this.serviceQueued = true;
    setImmediate(() => {
      this.serviceQueued = false;
      this.service();
    });
  }

  service(): void {
    if (this.stopped) return;
    const now = this.clock();
    for (let round = 0; round < 4; round += 1) {
      let progressed = false;
      for (let event = this.conn.pollEvent(); event; event = this.conn.pollEvent()) {
        progressed = true;
        this.onEvent(event);
      }
      // Bounded per call so one busy session cannot starve the event loop; the timer comes back at once.
      for (let sent = 0; sent < 256; sent += 1) {
        const transmit = this.conn.pollTransmit(now);
        if (!transmit) break;
        progressed = true;
        if (this.connected) {
          this.socket.send(transmit.bytes);
          continue;
        }
        if (transmit.remote !== this.destination.key) this.destination = { key: transmit.remote, ...splitAddress(transmit.remote) };
        this.socket.send(transmit.bytes, this.destination.port, this.destination.host);
      }
      if (!progressed) break;
    }
    if (this.conn.isClosed) {
      for (let event = this.conn.pollEvent(); event; event = this.conn.pollEvent()) this.onEvent(event);
      this.stop();
      return;
    }
    this.arm(now);
  }

  private arm(now: number): void {
    const due = this.conn.pollTimeout();
    if (due === undefined) return;
    if (this.timer && due >= this.timerDueMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDueMs = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueMs = Infinity;
      this.conn.handleTimeout(this.clock());
      this.service();
    }, Math.max(0, due - now));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
