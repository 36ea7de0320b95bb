import { z } from 'zod';

/** Every error code the API returns, with the HTTP status it always travels with. */
export const errorStatusByCode = {
  ValidationError: 400,
  InvalidBucketName: 400,
  InvalidObjectKey: 400,
  InvalidPartSize: 400,
  TooManyParts: 400,
  SizeMismatch: 400,
  MissingParts: 400,
  MalformedJSON: 400,
  MalformedXML: 400,
  InvalidQuery: 400,
  HttpFallbackDisabled: 400,
  TooManyFiles: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  NoSuchBucket: 404,
  NoSuchTransfer: 404,
  NoSuchUpload: 404,
  NoSuchKey: 404,
  BucketImmutable: 409,
  TransferNotActive: 409,
  WrongDirection: 409,
  FileMismatch: 409,
  PartNotFound: 409,
  PartMismatch: 409,
  FilesIncomplete: 409,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  ChecksumMismatch: 422,
  ImmutabilityUnknown: 503,
  StorageUnavailable: 503,
  InternalError: 500,
} as const;

export type ErrorCode = keyof typeof errorStatusByCode;
export type ErrorStatus = (typeof errorStatusByCode)[ErrorCode];

export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
  }),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;
