import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * One Node.js runtime for every function of ours. Lambda blocked creating `nodejs20.x` functions after
 * Node 20's end of life (April 2026); 22 is the closest supported line to the Node 20 the repo develops on.
 */
export const lambdaRuntime = lambda.Runtime.NODEJS_22_X;

export interface NodeFunctionProps {
  /** Directory with `index.mjs` exporting `handler` (see `bundleLambdas`). */
  readonly bundleDir: string;
  readonly description: string;
  readonly environment?: Readonly<Record<string, string>>;
  readonly logRetention: logs.RetentionDays;
  readonly memorySize?: number;
  readonly timeout?: Duration;
}

/**
 * A Node.js Lambda function (ARM64) with its own role and its own log group (with retention). The role
 * starts with nothing but writing to that log group, instead of the broad AWSLambdaBasicExecutionRole;
 * each caller grants exactly what the function needs.
 */
export class NodeFunction extends Construct implements iam.IGrantable {
  readonly grantPrincipal: iam.IPrincipal;
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: NodeFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.grantPrincipal = this.role;
    this.logGroup.grantWrite(this.role);
    this.function = new lambda.Function(this, 'Function', {
      description: props.description,
      runtime: lambdaRuntime,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(props.bundleDir),
      role: this.role,
      logGroup: this.logGroup,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(29),
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
    });
    // The role's policy must exist before the function is created, or the first invocations can fail.
    this.function.node.addDependency(this.role);
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Pinned to nodejs22.x on purpose: the code is developed and tested on Node 20/22 (package.json engines >=20); ' +
        'moving to Node 24 is a deliberate upgrade (one constant, lambdaRuntime), not an automatic one.',
    });
  }
}
