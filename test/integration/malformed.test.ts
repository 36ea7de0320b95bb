import { beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket } from '../support/s3';

/**
 * Bad input never yields a 500: each row is one malformed request, with the status and error code
 * it must get. `B` stands for a real bucket, `T` for a real fallback transfer id.
 */
interface Row {
  name: string;
  method: string;
  path: string;
  body?: string | Uint8Array<ArrayBuffer>;
  contentType?: string;
  headers?: Record<string, string>;
  /** `null`: no credentials; a string: the Authorization header. Default: the admin key. */
  auth?: string | null;
  status: number;
  code: string;
}

const json = 'application/json';
const setup = (request: object) => JSON.stringify({ transfer_requests: [{ transfer_request: { slipstream: { bucket: 'B' }, ...request } }] });
const big = (bytes: number) => JSON.stringify({ transfer_requests: [{ transfer_request: { paths: [{ source: 'x'.repeat(bytes) }] } }] });

const rows: Row[] = [
  // Authentication
  { name: 'no Authorization header', method: 'GET', path: '/v1/transfers', auth: null, status: 401, code: 'Unauthorized' },
  { name: 'unknown auth scheme', method: 'GET', path: '/v1/transfers', auth: 'Digest abc', status: 401, code: 'Unauthorized' },
  { name: 'bearer that is not a key', method: 'GET', path: '/v1/transfers', auth: 'Bearer hello', status: 401, code: 'Unauthorized' },
  { name: 'basic with garbage base64', method: 'POST', path: '/files/upload_setup', auth: 'Basic %%%', body: setup({ paths: [{ source: 'a' }] }), contentType: json, status: 401, code: 'Unauthorized' },
  { name: 'basic with unknown access key', method: 'POST', path: '/files/upload_setup', auth: `Basic ${Buffer.from('ak_0000000000000000:x').toString('base64')}`, body: '{}', contentType: json, status: 401, code: 'Unauthorized' },
  { name: 'basic not accepted on key admin', method: 'GET', path: '/v1/keys', auth: `Basic ${Buffer.from('a:b').toString('base64')}`, status: 401, code: 'Unauthorized' },
  // Bucket names and bucket URLs
  { name: 'bucket name with uppercase', method: 'GET', path: '/MyBucket?faspConnectionInfo', status: 400, code: 'InvalidBucketName' },
  { name: 'bucket name too short', method: 'GET', path: '/ab?faspConnectionInfo', status: 400, code: 'InvalidBucketName' },
  { name: 'bucket name as IP address', method: 'GET', path: '/192.168.1.1?faspConnectionInfo', status: 400, code: 'InvalidBucketName' },
  { name: 'bucket name with underscore', method: 'GET', path: '/my_bucket/?faspConnectionInfo', status: 404, code: 'NotFound' },
  { name: 'bucket name with adjacent dots', method: 'GET', path: '/a..b?faspConnectionInfo', status: 400, code: 'InvalidBucketName' },
  { name: 'bucket name too long', method: 'GET', path: `/${'a'.repeat(64)}?faspConnectionInfo`, status: 400, code: 'InvalidBucketName' },
  { name: 'bucket URL without a subresource', method: 'GET', path: '/B', status: 400, code: 'InvalidQuery' },
  { name: 'bucket URL with two subresources', method: 'GET', path: '/B?faspConnectionInfo&transferPreferences', status: 400, code: 'InvalidQuery' },
  { name: 'bucket URL with an unknown parameter', method: 'GET', path: '/B?faspConnectionInfo&x=1', status: 400, code: 'InvalidQuery' },
  { name: 'PUT of faspConnectionInfo', method: 'PUT', path: '/B?faspConnectionInfo', body: '{}', contentType: json, status: 400, code: 'InvalidQuery' },
  { name: 'bucket that does not exist', method: 'GET', path: '/no-such-bucket-x1?faspConnectionInfo', status: 404, code: 'NoSuchBucket' },
  // Bodies: media type, syntax, size
  { name: 'setup as text/plain', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a' }] }), contentType: 'text/plain', status: 415, code: 'UnsupportedMediaType' },
  { name: 'setup with no content type', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a' }] }), status: 415, code: 'UnsupportedMediaType' },
  { name: 'setup as form data', method: 'POST', path: '/files/upload_setup', body: 'a=b', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'UnsupportedMediaType' },
  { name: 'truncated JSON', method: 'POST', path: '/files/upload_setup', body: '{"transfer_requests": [', contentType: json, status: 400, code: 'MalformedJSON' },
  { name: 'JSON with trailing comma', method: 'POST', path: '/v1/keys', body: '{"name":"x",}', contentType: json, status: 400, code: 'MalformedJSON' },
  { name: 'empty body', method: 'POST', path: '/files/upload_setup', body: '', contentType: json, status: 400, code: 'MalformedJSON' },
  { name: 'binary garbage', method: 'POST', path: '/v1/fallback/uploads', body: new Uint8Array([0xff, 0xfe, 0x00, 0x01]), contentType: json, status: 400, code: 'MalformedJSON' },
  { name: 'JSON array instead of object', method: 'POST', path: '/files/upload_setup', body: '[]', contentType: json, status: 400, code: 'ValidationError' },
  { name: 'oversized setup body', method: 'POST', path: '/files/upload_setup', body: big(5 * 1024 * 1024), contentType: json, status: 413, code: 'PayloadTooLarge' },
  { name: 'oversized preferences body', method: 'PUT', path: '/v1/buckets/B/preferences', body: JSON.stringify({ pad: 'x'.repeat(20_000) }), contentType: json, status: 413, code: 'PayloadTooLarge' },
  { name: 'oversized key request', method: 'POST', path: '/v1/keys', body: JSON.stringify({ name: 'x'.repeat(20_000) }), contentType: json, status: 413, code: 'PayloadTooLarge' },
  // XML
  { name: 'malformed XML preferences', method: 'PUT', path: '/B?transferPreferences', body: '<TransferPreferences><RatePolicy>fair</TransferPreferences>', contentType: 'application/xml', status: 400, code: 'MalformedXML' },
  { name: 'XML with a DOCTYPE entity', method: 'PUT', path: '/B?transferPreferences', body: '<!DOCTYPE x [<!ENTITY a "b">]><TransferPreferences><RatePolicy>&a;</RatePolicy></TransferPreferences>', contentType: 'application/xml', status: 400, code: 'MalformedXML' },
  { name: 'XML with the wrong root', method: 'PUT', path: '/B?transferPreferences', body: '<Preferences><RatePolicy>fair</RatePolicy></Preferences>', contentType: 'application/xml', status: 400, code: 'MalformedXML' },
  { name: 'XML with an unknown element', method: 'PUT', path: '/B?transferPreferences', body: '<TransferPreferences><Colour>red</Colour></TransferPreferences>', contentType: 'text/xml', status: 400, code: 'ValidationError' },
  { name: 'XML with a bad policy', method: 'PUT', path: '/B?transferPreferences', body: '<TransferPreferences><RatePolicy>turbo</RatePolicy></TransferPreferences>', contentType: 'application/xml', status: 400, code: 'ValidationError' },
  { name: 'XML with a negative rate', method: 'PUT', path: '/B?transferPreferences', body: '<TransferPreferences><Upload><TargetRateKbps>-5</TargetRateKbps></Upload></TransferPreferences>', contentType: 'application/xml', status: 400, code: 'ValidationError' },
  // Shapes and unknown fields
  { name: 'setup with an unknown top-level field', method: 'POST', path: '/files/upload_setup', body: JSON.stringify({ transfer_requests: [], extra: 1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with no transfer requests', method: 'POST', path: '/files/upload_setup', body: JSON.stringify({ transfer_requests: [] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with an unknown request field', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a' }], turbo: true }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with no paths', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with a negative rate', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a' }], target_rate_kbps: -1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with an unknown rate policy', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a' }], rate_policy: 'turbo' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with a string size', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a', size: '10' }] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup without a bucket (API key)', method: 'POST', path: '/files/upload_setup', body: JSON.stringify({ transfer_requests: [{ transfer_request: { paths: [{ source: 'a' }] } }] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'setup with an invalid bucket name', method: 'POST', path: '/files/upload_setup', body: JSON.stringify({ transfer_requests: [{ transfer_request: { paths: [{ source: 'a' }], slipstream: { bucket: 'Bad_Bucket' } } }] }), contentType: json, status: 400, code: 'ValidationError' },
  // Object keys
  { name: 'destination with ..', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a', destination: 'x/../../etc/passwd' }] }), contentType: json, status: 400, code: 'InvalidObjectKey' },
  { name: 'destination with NUL', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a', destination: 'x\u0000y' }] }), contentType: json, status: 400, code: 'InvalidObjectKey' },
  { name: 'download source with leading /', method: 'POST', path: '/files/download_setup', body: setup({ paths: [{ source: '/etc/passwd' }] }), contentType: json, status: 400, code: 'InvalidObjectKey' },
  { name: 'destination_root with ..', method: 'POST', path: '/files/upload_setup', body: setup({ paths: [{ source: 'a' }], destination_root: '/x/../..' }), contentType: json, status: 400, code: 'InvalidObjectKey' },
  { name: 'fallback key with ..', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: '../x', sizeBytes: 1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'fallback key with a leading /', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: '/x', sizeBytes: 1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'fallback key with NUL', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: 'a\u0000', sizeBytes: 1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'fallback key over 1024 bytes', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: 'é'.repeat(600), sizeBytes: 1 }), contentType: json, status: 400, code: 'ValidationError' },
  // Fallback multipart rules
  { name: 'fallback part size below 5 MiB', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: 'k', sizeBytes: 50 * 1024 * 1024, partSizeBytes: 1024 }), contentType: json, status: 400, code: 'InvalidPartSize' },
  { name: 'fallback with too many parts', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: 'k', sizeBytes: 100 * 1024 ** 3, partSizeBytes: 5 * 1024 ** 2 }), contentType: json, status: 400, code: 'TooManyParts' },
  { name: 'fallback object above 5 TiB', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: 'k', sizeBytes: 6 * 1024 ** 4 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'fallback negative size', method: 'POST', path: '/v1/fallback/uploads', body: JSON.stringify({ bucket: 'B', key: 'k', sizeBytes: -1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'sign part 0', method: 'POST', path: '/v1/fallback/uploads/T/parts', body: JSON.stringify({ partNumbers: [0] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'sign part 10001', method: 'POST', path: '/v1/fallback/uploads/T/parts', body: JSON.stringify({ partNumbers: [10_001] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'sign a part beyond the last', method: 'POST', path: '/v1/fallback/uploads/T/parts', body: JSON.stringify({ partNumbers: [3] }), contentType: json, status: 400, code: 'InvalidPartSize' },
  { name: 'sign with no part numbers', method: 'POST', path: '/v1/fallback/uploads/T/parts', body: JSON.stringify({ partNumbers: [] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'complete with parts that were never uploaded', method: 'POST', path: '/v1/fallback/uploads/T/complete', body: JSON.stringify({ parts: [{ partNumber: 1, etag: '"abc"' }] }), contentType: json, status: 400, code: 'MissingParts' },
  { name: 'fallback upload id of the wrong form', method: 'GET', path: '/v1/fallback/uploads/../../etc/parts', status: 404, code: 'NotFound' },
  { name: 'fallback upload that does not exist', method: 'GET', path: '/v1/fallback/uploads/tr_00000000000000000000/parts', status: 404, code: 'NoSuchTransfer' },
  // Preferences
  { name: 'preferences missing fields on PUT', method: 'PUT', path: '/v1/buckets/B/preferences', body: JSON.stringify({ ratePolicy: 'fair' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'preferences with an unknown transport', method: 'PATCH', path: '/v1/buckets/B/preferences', body: JSON.stringify({ upload: { defaultTransport: 'carrier-pigeon' } }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'preferences with a fractional rate', method: 'PATCH', path: '/v1/buckets/B/preferences', body: JSON.stringify({ download: { targetRateKbps: 1.5 } }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'preferences with an unknown field', method: 'PATCH', path: '/v1/buckets/B/preferences', body: JSON.stringify({ colour: 'red' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'preferences with min above target', method: 'PATCH', path: '/v1/buckets/B/preferences', body: JSON.stringify({ upload: { targetRateKbps: 10, minRateKbps: 20 } }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'preferences with a bad query', method: 'GET', path: '/v1/buckets/B/preferences?x=1', status: 400, code: 'InvalidQuery' },
  // Transfers and keys
  { name: 'transfers with an unknown state', method: 'GET', path: '/v1/transfers?state=sleeping', status: 400, code: 'InvalidQuery' },
  { name: 'transfers with limit 0', method: 'GET', path: '/v1/transfers?limit=0', status: 400, code: 'InvalidQuery' },
  { name: 'transfers with a forged cursor', method: 'GET', path: '/v1/transfers?cursor=bm90LWEtY3Vyc29y', status: 400, code: 'InvalidQuery' },
  { name: 'transfers with an unknown parameter', method: 'GET', path: '/v1/transfers?sort=asc', status: 400, code: 'InvalidQuery' },
  { name: 'transfer id of the wrong form', method: 'GET', path: '/v1/transfers/hello', status: 404, code: 'NoSuchTransfer' },
  { name: 'cancel of an unknown transfer', method: 'POST', path: '/v1/transfers/tr_00000000000000000000/cancel', status: 404, code: 'NoSuchTransfer' },
  { name: 'key with no actions', method: 'POST', path: '/v1/keys', body: JSON.stringify({ name: 'x', buckets: ['*'], actions: [] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'key with an unknown action', method: 'POST', path: '/v1/keys', body: JSON.stringify({ name: 'x', buckets: ['*'], actions: ['delete'] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'key scoped to a bad bucket name', method: 'POST', path: '/v1/keys', body: JSON.stringify({ name: 'x', buckets: ['UPPER'], actions: ['read'] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'revoke of an unknown key', method: 'DELETE', path: '/v1/keys/0000000000000000', status: 404, code: 'NotFound' },
  // Companion
  { name: 'companion with a forged grant', method: 'POST', path: '/companion/sst1.companion.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/s3/multipart', body: '{"filename":"a"}', contentType: json, auth: null, status: 401, code: 'Unauthorized' },
  { name: 'companion with a transfer token', method: 'GET', path: '/companion/sst1.transfer.k1.AAAA/s3/params?filename=a', auth: null, status: 401, code: 'Unauthorized' },
  { name: 'unknown route', method: 'GET', path: '/v1/nothing-here', status: 404, code: 'NotFound' },
  // Continuing a transfer over HTTPS (`U`: an upload from upload_setup, `D`: a download)
  { name: 'transport that is neither http nor udp', method: 'POST', path: '/v1/transfers/U/transport', body: JSON.stringify({ transport: 'carrier-pigeon', reason: 'x' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'transport switch with an empty reason', method: 'POST', path: '/v1/transfers/U/transport', body: JSON.stringify({ transport: 'http', reason: '' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'transport switch with a reason over 200 characters', method: 'POST', path: '/v1/transfers/U/transport', body: JSON.stringify({ transport: 'http', reason: 'r'.repeat(201) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'transport switch as text/plain', method: 'POST', path: '/v1/transfers/U/transport', body: 'http', contentType: 'text/plain', status: 415, code: 'UnsupportedMediaType' },
  { name: 'transport switch with an unknown parameter', method: 'POST', path: '/v1/transfers/U/transport?force=1', body: JSON.stringify({ transport: 'http', reason: 'x' }), contentType: json, status: 400, code: 'InvalidQuery' },
  { name: 'transport switch of an unknown transfer', method: 'POST', path: '/v1/transfers/tr_00000000000000000000/transport', body: JSON.stringify({ transport: 'http', reason: 'x' }), contentType: json, status: 404, code: 'NoSuchTransfer' },
  { name: 'transport switch of a transfer id of the wrong form', method: 'POST', path: '/v1/transfers/hello/transport', body: JSON.stringify({ transport: 'http', reason: 'x' }), contentType: json, status: 404, code: 'NoSuchTransfer' },
  { name: 'oversized transport switch', method: 'POST', path: '/v1/transfers/U/transport', body: JSON.stringify({ transport: 'http', reason: 'x'.repeat(20_000) }), contentType: json, status: 413, code: 'PayloadTooLarge' },
  { name: 'GET of a continuation route', method: 'GET', path: '/v1/transfers/U/transport', status: 404, code: 'NotFound' },
  { name: 'file upload with a .. path', method: 'POST', path: '/v1/transfers/U/files/0/upload', body: JSON.stringify({ path: '../x', sizeBytes: 1, sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'file upload with a negative size', method: 'POST', path: '/v1/transfers/U/files/0/upload', body: JSON.stringify({ path: 'x', sizeBytes: -1, sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'file upload with a checksum that is not hex', method: 'POST', path: '/v1/transfers/U/files/0/upload', body: JSON.stringify({ path: 'x', sizeBytes: 1, sha256: 'z'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'file upload with an unknown field', method: 'POST', path: '/v1/transfers/U/files/0/upload', body: JSON.stringify({ path: 'x', sizeBytes: 1, sha256: 'a'.repeat(64), mode: 'fast' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'file index that is not a number', method: 'POST', path: '/v1/transfers/U/files/first/upload', body: JSON.stringify({ path: 'x', sizeBytes: 1, sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'file index beyond any transfer', method: 'POST', path: '/v1/transfers/U/files/100000/upload', body: JSON.stringify({ path: 'x', sizeBytes: 1, sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'file upload on a download transfer', method: 'POST', path: '/v1/transfers/D/files/0/upload', body: JSON.stringify({ path: 'x', sizeBytes: 1, sha256: 'a'.repeat(64) }), contentType: json, status: 409, code: 'WrongDirection' },
  { name: 'file upload on a /v1/fallback transfer', method: 'POST', path: '/v1/transfers/T/files/0/upload', body: JSON.stringify({ path: 'x', sizeBytes: 1, sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'HttpFallbackDisabled' },
  { name: 'sign file parts with an MD5 that is not base64 of 16 bytes', method: 'POST', path: '/v1/transfers/U/files/0/parts', body: JSON.stringify({ parts: [{ partNumber: 1, md5: 'abc' }] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'sign 101 file parts', method: 'POST', path: '/v1/transfers/U/files/0/parts', body: JSON.stringify({ parts: Array.from({ length: 101 }, (_, i) => ({ partNumber: i + 1, md5: 'A'.repeat(22) + '==' })) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'sign file part 0', method: 'POST', path: '/v1/transfers/U/files/0/parts', body: JSON.stringify({ parts: [{ partNumber: 0, md5: 'A'.repeat(22) + '==' }] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'sign parts of a file not started', method: 'POST', path: '/v1/transfers/U/files/0/parts', body: JSON.stringify({ parts: [{ partNumber: 1, md5: 'A'.repeat(22) + '==' }] }), contentType: json, status: 404, code: 'NoSuchUpload' },
  { name: 'record file part 0', method: 'POST', path: '/v1/transfers/U/files/0/parts/0', body: JSON.stringify({ etag: '"e"', sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'record file part 10001', method: 'POST', path: '/v1/transfers/U/files/0/parts/10001', body: JSON.stringify({ etag: '"e"', sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'record a file part without its ETag', method: 'POST', path: '/v1/transfers/U/files/0/parts/1', body: JSON.stringify({ sha256: 'a'.repeat(64) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'complete a file without a checksum', method: 'POST', path: '/v1/transfers/U/files/0/complete', body: '{}', contentType: json, status: 400, code: 'ValidationError' },
  { name: 'complete a file not started', method: 'POST', path: '/v1/transfers/U/files/0/complete', body: JSON.stringify({ sha256: 'a'.repeat(64) }), contentType: json, status: 404, code: 'NoSuchUpload' },
  { name: 'finish with a negative file count', method: 'POST', path: '/v1/transfers/U/finish', body: JSON.stringify({ files: -1 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'finish with a fractional file count', method: 'POST', path: '/v1/transfers/U/finish', body: JSON.stringify({ files: 1.5 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'finish with files not stored', method: 'POST', path: '/v1/transfers/U/finish', body: JSON.stringify({ files: 1 }), contentType: json, status: 409, code: 'FilesIncomplete' },
  { name: 'downloads with no paths', method: 'POST', path: '/v1/transfers/D/downloads', body: JSON.stringify({ paths: [] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'downloads with 101 paths', method: 'POST', path: '/v1/transfers/D/downloads', body: JSON.stringify({ paths: Array.from({ length: 101 }, (_, i) => `f${i}`) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'downloads with a .. path', method: 'POST', path: '/v1/transfers/D/downloads', body: JSON.stringify({ paths: ['a/../../etc/passwd'] }), contentType: json, status: 400, code: 'InvalidObjectKey' },
  { name: 'downloads of an object that does not exist', method: 'POST', path: '/v1/transfers/D/downloads', body: JSON.stringify({ paths: ['no-such-object.bin'] }), contentType: json, status: 404, code: 'NoSuchKey' },
  { name: 'downloads on an upload transfer', method: 'POST', path: '/v1/transfers/U/downloads', body: JSON.stringify({ paths: ['x'] }), contentType: json, status: 409, code: 'WrongDirection' },
  // Browsing a bucket (the console): bucket list, object listing, download URLs
  { name: 'bucket list with a parameter', method: 'GET', path: '/v1/buckets?all=1', status: 400, code: 'InvalidQuery' },
  { name: 'bucket list without credentials', method: 'GET', path: '/v1/buckets', auth: null, status: 401, code: 'Unauthorized' },
  { name: 'objects without credentials', method: 'GET', path: '/v1/buckets/B/objects', auth: null, status: 401, code: 'Unauthorized' },
  { name: 'objects of a bad bucket name', method: 'GET', path: '/v1/buckets/Bad_Bucket/objects', status: 400, code: 'InvalidBucketName' },
  { name: 'objects of a bucket that does not exist', method: 'GET', path: '/v1/buckets/no-such-bucket-x1/objects', status: 404, code: 'NoSuchBucket' },
  { name: 'objects with limit 0', method: 'GET', path: '/v1/buckets/B/objects?limit=0', status: 400, code: 'InvalidQuery' },
  { name: 'objects with limit 5000', method: 'GET', path: '/v1/buckets/B/objects?limit=5000', status: 400, code: 'InvalidQuery' },
  { name: 'objects with a word for a limit', method: 'GET', path: '/v1/buckets/B/objects?limit=many', status: 400, code: 'InvalidQuery' },
  { name: 'objects with another delimiter', method: 'GET', path: '/v1/buckets/B/objects?delimiter=%7C', status: 400, code: 'InvalidQuery' },
  { name: 'objects with an unknown parameter', method: 'GET', path: '/v1/buckets/B/objects?sort=size', status: 400, code: 'InvalidQuery' },
  { name: 'objects with a forged cursor', method: 'GET', path: '/v1/buckets/B/objects?cursor=bm90LWEtY3Vyc29y', status: 400, code: 'InvalidQuery' },
  { name: 'objects with a cursor that is not base64url', method: 'GET', path: '/v1/buckets/B/objects?cursor=c1.%21%21', status: 400, code: 'InvalidQuery' },
  { name: 'objects with a control character in the prefix', method: 'GET', path: '/v1/buckets/B/objects?prefix=a%01b', status: 400, code: 'InvalidQuery' },
  { name: 'objects with a prefix over 1024 bytes', method: 'GET', path: `/v1/buckets/B/objects?prefix=${'%C3%A9'.repeat(600)}`, status: 400, code: 'InvalidQuery' },
  { name: 'objects with two limits', method: 'GET', path: '/v1/buckets/B/objects?limit=1&limit=2', status: 400, code: 'InvalidQuery' },
  { name: 'download URLs with no keys', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: [] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'download URLs with 101 keys', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: Array.from({ length: 101 }, (_, i) => `k${i}`) }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'download URLs with a .. key', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: ['a/../../etc/passwd'] }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'download URLs with an unknown disposition', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: ['a'], disposition: 'execute' }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'download URLs with an unknown field', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: ['a'], expiresIn: 999999 }), contentType: json, status: 400, code: 'ValidationError' },
  { name: 'download URLs as text/plain', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: ['a'] }), contentType: 'text/plain', status: 415, code: 'UnsupportedMediaType' },
  { name: 'download URLs with truncated JSON', method: 'POST', path: '/v1/buckets/B/download-urls', body: '{"keys": [', contentType: json, status: 400, code: 'MalformedJSON' },
  { name: 'download URLs with an oversized body', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: ['x'.repeat(200 * 1024)] }), contentType: json, status: 413, code: 'PayloadTooLarge' },
  { name: 'download URLs with a parameter', method: 'POST', path: '/v1/buckets/B/download-urls?x=1', body: JSON.stringify({ keys: ['a'] }), contentType: json, status: 400, code: 'InvalidQuery' },
  { name: 'download URL of an object that does not exist', method: 'POST', path: '/v1/buckets/B/download-urls', body: JSON.stringify({ keys: ['no-such-object.bin'] }), contentType: json, status: 404, code: 'NoSuchKey' },
];

let api: TestApi;
let bucket: string;
let transferId: string;
let uploadTransferId: string;
let downloadTransferId: string;

beforeAll(async () => {
  api = await createTestApi();
  bucket = await createBucket(inject('s3rver'));
  const created = await api.call('/v1/fallback/uploads', { method: 'POST', json: { bucket, key: 'malformed/target.bin', sizeBytes: 10 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 } });
  transferId = ((await created.json()) as { transferId: string }).transferId;
  const setup = async (kind: 'upload' | 'download') => {
    const res = await api.call(`/files/${kind}_setup`, { method: 'POST', json: { transfer_requests: [{ transfer_request: { paths: [{ source: 'x', size: 1 }], slipstream: { bucket } } }] } });
    return ((await res.json()) as { transfer_specs: { transfer_spec: { slipstream: { transfer_id: string } } }[] }).transfer_specs[0]!.transfer_spec.slipstream.transfer_id;
  };
  [uploadTransferId, downloadTransferId] = await Promise.all([setup('upload'), setup('download')]);
});

const fill = (text: string) =>
  text
    .replace(/\bB\b/g, bucket)
    .replace(/\/T\//g, `/${transferId}/`)
    .replace(/\/U\//g, `/${uploadTransferId}/`)
    .replace(/\/D\//g, `/${downloadTransferId}/`);

describe('malformed requests', () => {
  it('has at least 40 rows', () => expect(rows.length).toBeGreaterThanOrEqual(40));

  it.each(rows)('$name → $status $code', async (row) => {
    const headers: Record<string, string> = { ...row.headers };
    if (row.contentType) headers['content-type'] = row.contentType;
    if (row.auth !== undefined && row.auth !== null) headers.authorization = row.auth;
    const body = typeof row.body === 'string' ? fill(row.body) : row.body;
    const res = await api.call(fill(row.path), { method: row.method, headers, key: row.auth === null ? null : undefined, ...(body !== undefined ? { body } : {}) });
    const payload = (await res.json()) as { error?: { code: string; message: string } };
    expect({ status: res.status, code: payload.error?.code }).toEqual({ status: row.status, code: row.code });
    expect(payload.error?.message.length).toBeGreaterThan(10);
  });
});
