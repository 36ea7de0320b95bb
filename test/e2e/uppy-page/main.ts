import AwsS3 from '@uppy/aws-s3';
import Uppy from '@uppy/core';
import { seededBytes } from '../../support/bytes';
import type { FailedFile, UploadedFile, UploadReport, UploadSpec } from './protocol';

/**
 * The browser side of test/e2e/uppy.test.ts: stock `@uppy/core` + `@uppy/aws-s3`, configured as a user
 * would, pointed at Slipstream's Companion-compatible routes (`?companion=<companionUrl>` in the page URL).
 * Files above 5 MiB go multipart in 5 MiB parts; smaller ones take the presigned-POST path (`/s3/params`).
 */
const MiB = 1024 * 1024;


async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function runUpload(specs: UploadSpec[]): Promise<UploadReport> {
  const companionEndpoint = new URLSearchParams(location.search).get('companion');
  if (!companionEndpoint) throw new Error('open the page with ?companion=<companion URL>');

  const uppy = new Uppy({ autoProceed: false });
  uppy.use(AwsS3, {
    companionEndpoint,
    shouldUseMultipart: (file) => (file.size ?? 0) > 5 * MiB,
    getChunkSize: () => 5 * MiB,
  });

  const errors: string[] = [];
  const partsUploaded: Record<string, number[]> = {};
  uppy.on('upload-error', (file, error) => errors.push(`${file?.name ?? '?'}: ${message(error)}`));
  uppy.on('s3-multipart:part-uploaded', (file, part) => (partsUploaded[file.name ?? '?'] ??= []).push(part.PartNumber));

  const hashes = new Map<string, string>();
  for (const spec of specs) {
    const bytes = seededBytes(spec.size, spec.seed);
    hashes.set(spec.name, await sha256Hex(bytes));
    const data = new File([bytes], spec.name, { type: spec.type });
    uppy.addFile({ name: spec.name, type: spec.type, data, source: 'e2e' });
  }

  try {
    const result = await uppy.upload();
    const successful: UploadedFile[] = (result?.successful ?? []).map((file) => ({
      name: file.name ?? '?',
      size: file.size ?? -1,
      sha256: hashes.get(file.name ?? '') ?? '',
      key: (file.response?.body?.['key'] as string | undefined) ?? null,
      location: file.response?.uploadURL ?? null,
    }));
    const failed: FailedFile[] = (result?.failed ?? []).map((file) => ({ name: file.name ?? '?', error: String(file.error ?? 'unknown error') }));
    return { successful, failed, errors, partsUploaded };
  } finally {
    uppy.destroy();
  }
}

window.runUpload = runUpload;
