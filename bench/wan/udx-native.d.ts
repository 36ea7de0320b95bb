/** The part of udx-native (no types of its own) that the WAN benchmark's baseline uses. */
declare module 'udx-native' {
  import type { Duplex } from 'node:stream';

  export interface UdxSocket {
    bind(port?: number, host?: string): void;
    address(): { host: string; family: number; port: number };
    close(): Promise<void>;
    setRecvBufferSize(bytes: number): number;
    setSendBufferSize(bytes: number): number;
  }

  /** A streamx Duplex: write() returns false until 'drain'; 'end' when the peer ended; 'close' at the very end. */
  export interface UdxStream extends Duplex {
    readonly rtt: number;
    readonly cwnd: number;
    readonly mtu: number;
    connect(socket: UdxSocket, remoteId: number, port: number, host?: string): void;
  }

  class UDX {
    createSocket(options?: { ipv6Only?: boolean; reuseAddress?: boolean }): UdxSocket;
    createStream(id: number, options?: { framed?: boolean; seq?: number }): UdxStream;
  }
  export default UDX;
}
