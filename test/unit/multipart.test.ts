import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../core/errors';
import { checkPartsComplete, expectedPartSize, planParts } from '../../functions/multipart';

const MiB = 1024 * 1024;
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return (error as ServiceError).code;
  }
  return undefined;
};

describe('part planning', () => {
  it('defaults to 8 MiB parts and grows them in whole MiB to stay within 10,000 parts', () => {
    expect(planParts(100 * MiB)).toEqual({ partSizeBytes: 8 * MiB, partCount: 13 });
    const huge = planParts(200 * 1024 * MiB);
    expect(huge.partCount).toBeLessThanOrEqual(10_000);
    expect(huge.partSizeBytes % MiB).toBe(0);
    expect(planParts(0)).toEqual({ partSizeBytes: 8 * MiB, partCount: 1 });
  });

  it('allows a small part size only for a single-part object', () => {
    expect(planParts(1000, 1000)).toEqual({ partSizeBytes: 1000, partCount: 1 });
    expect(code(() => planParts(2000, 1000))).toBe('InvalidPartSize');
    expect(code(() => planParts(6 * 1024 * 1024 * MiB, 6 * 1024 * MiB))).toBe('InvalidPartSize');
    expect(code(() => planParts(60_000 * MiB, 5 * MiB))).toBe('TooManyParts');
  });

  it('knows the size of the last part', () => {
    const plan = planParts(11 * MiB, 5 * MiB);
    expect([1, 2, 3].map((n) => expectedPartSize(plan, 11 * MiB, n))).toEqual([5 * MiB, 5 * MiB, MiB]);
  });
});

describe('completion checks', () => {
  const transfer = { bytesTotal: 11 * MiB, partSizeBytes: 5 * MiB };
  const part = (n: number, size: number) => ({ partNumber: n, etag: `"e${n}"`, sizeBytes: size });

  it('accepts exactly the planned parts', () => {
    expect(checkPartsComplete(transfer, [part(1, 5 * MiB), part(2, 5 * MiB), part(3, MiB)])).toHaveLength(3);
  });

  it('refuses gaps, short parts, missing tails, wrong ETags and duplicates', () => {
    expect(code(() => checkPartsComplete(transfer, [part(1, 5 * MiB), part(3, MiB)]))).toBe('MissingParts');
    expect(code(() => checkPartsComplete(transfer, [part(1, 5 * MiB), part(2, 5 * MiB)]))).toBe('MissingParts');
    expect(code(() => checkPartsComplete(transfer, [part(1, 5 * MiB), part(2, 4 * MiB), part(3, 2 * MiB)]))).toBe('SizeMismatch');
    expect(code(() => checkPartsComplete(transfer, []))).toBe('MissingParts');
    const held = [part(1, 5 * MiB), part(2, 5 * MiB), part(3, MiB)];
    expect(code(() => checkPartsComplete(transfer, held, [{ partNumber: 1, etag: 'x' }]))).toBe('ValidationError');
    expect(code(() => checkPartsComplete(transfer, held, [{ partNumber: 1, etag: 'e1' }, { partNumber: 1, etag: 'e1' }]))).toBe('ValidationError');
  });

  it('with an unknown total, needs 5 MiB in every part but the last', () => {
    const open = { bytesTotal: null, partSizeBytes: undefined };
    expect(checkPartsComplete(open, [part(1, 5 * MiB), part(2, 10)])).toHaveLength(2);
    expect(code(() => checkPartsComplete(open, [part(1, MiB), part(2, 10)]))).toBe('InvalidPartSize');
  });
});
