import {
  DeleteBucketCorsCommand,
  DeleteBucketLifecycleCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
  type CORSRule,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import { respondTo, type CustomResourceEvent } from './cfn-response';

/** CloudFormation passes every property as a string (numbers included). */
interface Props {
  BucketName: string;
  AllowedOrigins: string[];
  AbortIncompleteMultipartAfterDays: string;
}

export const corsRuleId = 'slipstream-browser-transfers';
export const lifecycleRuleId = 'slipstream-abort-incomplete-multipart';

export function slipstreamCorsRule(allowedOrigins: readonly string[]): CORSRule {
  return {
    ID: corsRuleId,
    AllowedOrigins: [...allowedOrigins],
    AllowedMethods: ['GET', 'PUT', 'POST', 'HEAD'],
    AllowedHeaders: ['*'],
    // Multipart uploads from the browser (Uppy) need each part's ETag.
    ExposeHeaders: ['ETag'],
    MaxAgeSeconds: 3600,
  };
}

export function slipstreamLifecycleRule(days: number): LifecycleRule {
  return {
    ID: lifecycleRuleId,
    Status: 'Enabled',
    Filter: { Prefix: '' },
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: days },
  };
}

/** The bucket's other rules, untouched, plus ours (replacing an older version of ours). */
export function mergeRules<Rule extends { ID?: string | undefined }>(existing: readonly Rule[], id: string, ours: Rule | undefined): Rule[] {
  const others = existing.filter((rule) => rule.ID !== id);
  return ours ? [...others, ours] : others;
}

function errorName(error: unknown): string {
  return (error as { name?: string; Code?: string }).name ?? (error as { Code?: string }).Code ?? '';
}

const s3 = new S3Client({ followRegionRedirects: true, maxAttempts: 5 });

async function currentCors(bucket: string): Promise<CORSRule[]> {
  try {
    return (await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))).CORSRules ?? [];
  } catch (error) {
    if (errorName(error) === 'NoSuchCORSConfiguration') return [];
    throw error;
  }
}

async function currentLifecycle(bucket: string) {
  try {
    const out = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    return { rules: out.Rules ?? [], transitionDefaultMinimumObjectSize: out.TransitionDefaultMinimumObjectSize };
  } catch (error) {
    if (errorName(error) === 'NoSuchLifecycleConfiguration') return { rules: [], transitionDefaultMinimumObjectSize: undefined };
    throw error;
  }
}

/** Adds (ours defined) or removes (ours undefined) our rules, leaving every other rule of the bucket as it was. */
async function apply(bucket: string, cors: CORSRule | undefined, lifecycle: LifecycleRule | undefined): Promise<void> {
  const corsRules = mergeRules(await currentCors(bucket), corsRuleId, cors);
  if (corsRules.length > 0) await s3.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: corsRules } }));
  else await s3.send(new DeleteBucketCorsCommand({ Bucket: bucket }));

  const current = await currentLifecycle(bucket);
  const rules = mergeRules(current.rules, lifecycleRuleId, lifecycle);
  if (rules.length > 0) {
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: bucket,
        LifecycleConfiguration: { Rules: rules },
        ...(current.transitionDefaultMinimumObjectSize ? { TransitionDefaultMinimumObjectSize: current.transitionDefaultMinimumObjectSize } : {}),
      }),
    );
  } else {
    await s3.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }));
  }
}

/**
 * Keeps Slipstream's CORS rule and its abort-incomplete-multipart lifecycle rule on an existing bucket.
 * Unlike a plain PutBucketCors / PutBucketLifecycleConfiguration, it reads the bucket's configuration
 * first and replaces only the rules with our IDs, so the owner's own rules survive deploys and stack
 * deletion (which removes only ours).
 */
export async function handler(event: CustomResourceEvent<Props>): Promise<void> {
  await respondTo(event, async (e) => {
    const bucket = e.ResourceProperties.BucketName;
    const physicalResourceId = `slipstream-bucket-settings:${bucket}`;
    if (e.RequestType === 'Delete') {
      try {
        await apply(bucket, undefined, undefined);
      } catch (error) {
        // A bucket removed from the config is no longer in this function's policy by the time CloudFormation
        // deletes its settings; our two rules then stay on it (harmless), and deleting must not fail for that.
        if (errorName(error) !== 'NoSuchBucket' && errorName(error) !== 'AccessDenied') throw error;
        console.warn(JSON.stringify({ level: 'warn', msg: 'could not remove Slipstream rules', bucket, error: errorName(error) }));
      }
      return { physicalResourceId: e.PhysicalResourceId ?? physicalResourceId };
    }
    const days = Number(e.ResourceProperties.AbortIncompleteMultipartAfterDays);
    if (!Number.isInteger(days) || days < 1) throw new Error(`AbortIncompleteMultipartAfterDays must be a positive integer, got ${days}`);
    try {
      await apply(bucket, slipstreamCorsRule(e.ResourceProperties.AllowedOrigins), slipstreamLifecycleRule(days));
    } catch (error) {
      if (errorName(error) === 'NoSuchBucket') {
        throw new Error(`bucket ${bucket} does not exist: create it first, or remove it from the "buckets" config`);
      }
      throw error;
    }
    // A new bucket name is a new physical id, so CloudFormation then deletes (cleans) the old bucket's rules.
    return { physicalResourceId };
  });
}
