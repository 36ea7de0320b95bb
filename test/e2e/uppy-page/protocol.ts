/** What the test asks the page to upload, and what the page reports back (plain JSON both ways). */
export interface UploadSpec {
  name: string;
  size: number;
  /** Seed of the deterministic bytes; the test computes the same bytes in Node. */
  seed: number;
  type: string;
}

export interface UploadedFile {
  name: string;
  size: number;
  /** sha256 of the bytes the browser handed to Uppy, hex. */
  sha256: string;
  /** The object key Uppy reports (from Companion's answer, or the POST policy's `key` field). */
  key: string | null;
  location: string | null;
}

export interface FailedFile {
  name: string;
  error: string;
}

export interface UploadReport {
  successful: UploadedFile[];
  failed: FailedFile[];
  /** Every `upload-error` event, as `name: message`. */
  errors: string[];
  /** `s3-multipart:part-uploaded` events, per file name. */
  partsUploaded: Record<string, number[]>;
}

export interface UploadPageApi {
  runUpload(specs: UploadSpec[]): Promise<UploadReport>;
}

declare global {
  interface Window {
    runUpload?: UploadPageApi['runUpload'];
  }
}
