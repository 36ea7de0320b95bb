import { CustomResource, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { bundleLambdas } from './bundle';
import { NodeFunction } from './node-function';

export interface TokenKeysProps {
  readonly logRetention: logs.RetentionDays;
}

/**
 * The keyring that seals transfer tokens, in Secrets Manager. App code finds it through
 * `SLIPSTREAM_TOKEN_SECRET_ARN` and reads `{"currentKeyId":"k1","keys":{"k1":"<base64 of 32 bytes>"}}`.
 *
 * Secrets Manager can generate random text but not that nested JSON with a base64 key (generateSecretString
 * only adds a top-level string of printable characters), so the secret is created with a throwaway random
 * value and a small custom resource writes the real keyring once, from 32 bytes of `crypto.randomBytes`.
 * The key never appears in the template, in CloudFormation events or in outputs, and stack updates never
 * touch the value again, so a manual rotation survives every later deploy.
 *
 * Rotation is manual (see infra/README.md): add `k2` to `keys`, set `currentKeyId` to `k2`, and remove `k1`
 * only after the longest token lifetime (tokenTtlSeconds) has passed.
 */
export class TokenKeys extends Construct {
  readonly secret: secretsmanager.Secret;
  /** The resource that writes the first keyring; anything reading the secret at start should depend on it. */
  readonly initialized: CustomResource;

  constructor(scope: Construct, id: string, props: TokenKeysProps) {
    super(scope, id);
    this.secret = new secretsmanager.Secret(this, 'Secret', {
      description: 'Slipstream transfer-token keyring: {"currentKeyId", "keys": {id: base64 32-byte key}}. Rotated by hand.',
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Token keys rotate by hand (add a key id, switch currentKeyId, drop the old key after the token TTL): ' +
        'a Secrets Manager rotation Lambda would have to keep old keys for in-flight tokens, which the manual procedure in infra/README.md does.',
    });

    const bundle = bundleLambdas({ tokenKeyring: 'infra/lambda/token-keyring.ts' }).tokenKeyring!;
    const writer = new NodeFunction(this, 'Writer', {
      bundleDir: bundle,
      description: 'Deploy time only: writes the first Slipstream token keyring into its secret',
      logRetention: props.logRetention,
      memorySize: 256,
      timeout: Duration.minutes(1),
    });
    this.secret.grantRead(writer);
    writer.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['secretsmanager:PutSecretValue'], resources: [this.secret.secretArn] }),
    );

    this.initialized = new CustomResource(this, 'Keyring', {
      serviceToken: writer.function.functionArn,
      resourceType: 'Custom::SlipstreamTokenKeyring',
      properties: { SecretArn: this.secret.secretArn, KeyId: 'k1' },
    });
    this.initialized.node.addDependency(writer);
  }

  get secretArn(): string {
    return this.secret.secretArn;
  }

  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.secret.grantRead(grantee);
  }
}
