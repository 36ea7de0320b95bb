import { describe, expect, it } from 'vitest';
import { Keyring } from '../../core/token';
import { corsRuleId, lifecycleRuleId, mergeRules, slipstreamCorsRule, slipstreamLifecycleRule } from '../../infra/lambda/bucket-settings';
import { isKeyring, newKeyring } from '../../infra/lambda/token-keyring';

describe('bucket settings custom resource', () => {
  it('builds the CORS rule browsers need for presigned multipart uploads', () => {
    expect(slipstreamCorsRule(['https://d1.cloudfront.net', 'https://console.example.com'])).toEqual({
      ID: corsRuleId,
      AllowedOrigins: ['https://d1.cloudfront.net', 'https://console.example.com'],
      AllowedMethods: ['GET', 'PUT', 'POST', 'HEAD'],
      AllowedHeaders: ['*'],
      ExposeHeaders: ['ETag'],
      MaxAgeSeconds: 3600,
    });
  });

  it('builds a whole-bucket rule that aborts incomplete multipart uploads', () => {
    expect(slipstreamLifecycleRule(3)).toEqual({
      ID: lifecycleRuleId,
      Status: 'Enabled',
      Filter: { Prefix: '' },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 },
    });
  });

  it("keeps the owner's rules and replaces or removes only ours", () => {
    const owners = [{ ID: 'owner-a' }, { ID: undefined }, { ID: 'owner-b' }];
    const oldOurs = { ID: corsRuleId, MaxAgeSeconds: 60 };
    const newOurs = { ID: corsRuleId, MaxAgeSeconds: 3600 };
    expect(mergeRules(owners, corsRuleId, newOurs)).toEqual([...owners, newOurs]);
    expect(mergeRules([owners[0]!, oldOurs, owners[2]!], corsRuleId, newOurs)).toEqual([owners[0], owners[2], newOurs]);
    expect(mergeRules([oldOurs, ...owners], corsRuleId, undefined)).toEqual(owners);
    expect(mergeRules([oldOurs], corsRuleId, undefined)).toEqual([]);
  });
});

describe('token keyring custom resource', () => {
  it('writes a keyring the service accepts', () => {
    const json = newKeyring('k1');
    expect(JSON.parse(json)).toMatchObject({ currentKeyId: 'k1', keys: { k1: expect.any(String) } });
    expect(Buffer.from(JSON.parse(json).keys.k1, 'base64')).toHaveLength(32);
    expect(() => Keyring.fromJson(json)).not.toThrow();
    expect(newKeyring('k1')).not.toBe(json);
  });

  it('recognizes an existing keyring, so it never overwrites a rotated one', () => {
    expect(isKeyring(newKeyring('k1'))).toBe(true);
    expect(isKeyring(JSON.stringify({ currentKeyId: 'k2', keys: { k1: 'a', k2: 'b' } }))).toBe(true);
    expect(isKeyring('Xy3randomPlaceholderFromSecretsManager')).toBe(false);
    expect(isKeyring(JSON.stringify({ currentKeyId: 'k3', keys: { k1: 'a' } }))).toBe(false);
    expect(isKeyring(undefined)).toBe(false);
  });
});
