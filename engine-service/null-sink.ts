import { RangeSet } from '../protocol/ranges';
import { StreamLayout, type FileEntry } from '../protocol/transfer';

/** What a session needs from the place uploaded bytes go. */
export interface DataSink {
  readonly bytesTransferred: number;
  addFiles(files: readonly FileEntry[]): void;
  resumeState(): Promise<[number, number][]>;
  receiveLimit(): number;
  write(streamOffset: number, bytes: Uint8Array): void;
  commitFile(index: number, expectedChecksum: string): Promise<void>;
  flushProgress(): Promise<void>;
  close(): Promise<void>;
  cancel(): Promise<void>;
}

/**
 * Discards every byte: the benchmark's way to measure the engine's own ceiling (UDP, crypto, protocol)
 * without S3. Checksums are not verified. Never used for real transfers.
 */
export class NullSink implements DataSink {
  private readonly layout = new StreamLayout();
  private readonly received = new RangeSet();
  /** Commits waiting for their file's last bytes. */
  private readonly waiting = new Map<number, () => void>();

  constructor(private readonly windowBytes: number) {}

  get bytesTransferred(): number {
    return this.received.total();
  }

  addFiles(files: readonly FileEntry[]): void {
    for (const file of files) this.layout.add(file);
  }

  async resumeState(): Promise<[number, number][]> {
    return [];
  }

  receiveLimit(): number {
    const contiguous = this.received.min === 0 ? this.received.range(0)[1] : 0;
    return contiguous + this.windowBytes;
  }

  write(streamOffset: number, bytes: Uint8Array): void {
    this.received.add(streamOffset, streamOffset + bytes.length);
    for (const [index, resolve] of this.waiting) {
      if (this.complete(index)) {
        this.waiting.delete(index);
        resolve();
      }
    }
  }

  private complete(index: number): boolean {
    const start = this.layout.start(index);
    return this.received.covers(start, start + this.layout.files[index]!.size);
  }

  /** Like a real sink, a file is "stored" only once all its bytes have arrived. */
  commitFile(index: number): Promise<void> {
    if (this.complete(index)) return Promise.resolve();
    return new Promise((resolve) => this.waiting.set(index, resolve));
  }

  async flushProgress(): Promise<void> {}

  async close(): Promise<void> {}

  async cancel(): Promise<void> {}
}
