import { Duration, IgnoreMode, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { ServedBuckets } from './bucket-settings';
import { repoRoot } from './bundle';
import type { Network } from './network';
import type { TokenKeys } from './secrets';
import type { State } from './state';

/**
 * What the engine image is built from: the repository root as Docker context, with everything excluded
 * except what `engine-service/Dockerfile` copies. This also keeps `cdk synth` fast: staging copies only
 * these files (never node_modules, cdk.out or .slipstream).
 */
export const engineImageExclude = [
  '*',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!protocol',
  '!contracts',
  '!core',
  '!engine-service',
  '**/node_modules',
  '**/*.test.ts',
  '**/README.md',
];

export interface EngineProps {
  readonly network: Network;
  readonly state: State;
  readonly tokenKeys: TokenKeys;
  readonly servedBuckets: ServedBuckets;
  readonly bucketNames: readonly string[];
  readonly enginePort: number;
  readonly healthPort: number;
  readonly desiredCount: number;
  readonly cpu: number;
  readonly memoryLimitMiB: number;
  readonly cpuArchitecture: 'x86_64' | 'arm64';
  readonly tokenTtlSeconds: number;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The data plane: the UDP transfer engine as an ECS Fargate service in the VPC's isolated subnets, behind an
 * internet-facing Network Load Balancer with a UDP listener on the transfer port. The NLB checks each task
 * with a TCP connect to its health port. State lives in DynamoDB, so any task can serve any session.
 */
export class Engine extends Construct {
  readonly cluster: ecs.Cluster;
  readonly service: ecs.FargateService;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly loadBalancer: elbv2.NetworkLoadBalancer;
  readonly targetGroup: elbv2.NetworkTargetGroup;
  readonly securityGroup: ec2.SecurityGroup;
  /** The public DNS name clients send UDP to. */
  readonly engineHost: string;
  readonly enginePort: number;

  constructor(scope: Construct, id: string, props: EngineProps) {
    super(scope, id);
    const { vpc } = props.network;
    this.enginePort = props.enginePort;

    this.cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });

    const arm = props.cpuArchitecture === 'arm64';
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryLimitMiB,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: arm ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
      },
    });

    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    const container = this.taskDefinition.addContainer('engine', {
      // Staged at synth (no Docker run); built and pushed by `cdk deploy`.
      image: ecs.ContainerImage.fromAsset(repoRoot, {
        file: 'engine-service/Dockerfile',
        exclude: engineImageExclude,
        ignoreMode: IgnoreMode.DOCKER,
        platform: arm ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
      }),
      essential: true,
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'engine', logGroup }),
      environment: {
        AWS_REGION: Stack.of(this).region,
        SLIPSTREAM_TABLE_NAME: props.state.tableName,
        SLIPSTREAM_TOKEN_SECRET_ARN: props.tokenKeys.secretArn,
        SLIPSTREAM_BUCKETS: props.bucketNames.join(','),
        SLIPSTREAM_ENGINE_PORT: String(props.enginePort),
        SLIPSTREAM_HEALTH_PORT: String(props.healthPort),
        SLIPSTREAM_TOKEN_TTL_SECONDS: String(props.tokenTtlSeconds),
      },
      portMappings: [
        { name: 'transfer', containerPort: props.enginePort, protocol: ecs.Protocol.UDP },
        { name: 'health', containerPort: props.healthPort, protocol: ecs.Protocol.TCP },
      ],
      // Time for sessions to checkpoint their parts before the task is stopped (Fargate allows up to 120 s).
      stopTimeout: Duration.seconds(60),
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds configuration only (table name, secret ARN, bucket names, ports, TTLs); ' +
        'the token keyring itself is read from Secrets Manager at run time through the task role.',
    });

    // Task role: the engine's AWS access, and nothing else.
    const taskRole = this.taskDefinition.taskRole;
    props.state.grantReadWrite(taskRole);
    props.tokenKeys.grantRead(taskRole);
    props.servedBuckets.grant(
      taskRole,
      's3:PutObject',
      's3:GetObject',
      's3:AbortMultipartUpload',
      's3:ListMultipartUploadParts',
      's3:GetBucketObjectLockConfiguration',
      's3:ListBucket',
    );
    const executionRole = this.taskDefinition.obtainExecutionRole();
    Validations.of(executionRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken (image pull) has no resource-level permissions; the repository actions themselves are scoped to the CDK asset repository.',
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc,
      description: 'Slipstream engine tasks: UDP transfers from anywhere, health checks from the VPC',
      allowAllOutbound: true,
    });
    // UDP from anywhere: the engine is a public transfer endpoint (like Aspera's FASP port). The NLB keeps
    // the client's source address for UDP, so the task sees, and must admit, the clients' own addresses.
    // Every session must present a sealed token before any data is accepted.
    this.securityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.udp(props.enginePort), 'Slipstream transfers (public endpoint)');
    this.securityGroup.addIngressRule(ec2.Peer.ipv4(props.network.cidr), ec2.Port.tcp(props.healthPort), 'NLB health checks');
    Validations.of(this.securityGroup).acknowledge({
      id: 'AwsSolutions-EC23',
      reason: `Public transfer endpoint: UDP ${props.enginePort} must accept any client address (the NLB preserves client IPs for UDP); sessions are authenticated by sealed tokens.`,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: props.desiredCount,
      assignPublicIp: false,
      vpcSubnets: props.network.engineSubnets,
      securityGroups: [this.securityGroup],
      circuitBreaker: { enable: true, rollback: true },
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      healthCheckGracePeriod: Duration.seconds(60),
      enableECSManagedTags: true,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });
    // The keyring must exist before the first task starts.
    this.service.node.addDependency(props.tokenKeys.initialized);

    const nlbSecurityGroup = new ec2.SecurityGroup(this, 'NlbSecurityGroup', {
      vpc,
      description: 'Slipstream engine NLB: UDP transfers in from anywhere; out to the tasks only',
      allowAllOutbound: false,
    });
    nlbSecurityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.udp(props.enginePort), 'Slipstream transfers (public endpoint)');
    nlbSecurityGroup.addEgressRule(this.securityGroup, ec2.Port.udp(props.enginePort), 'Transfers to the engine tasks');
    nlbSecurityGroup.addEgressRule(this.securityGroup, ec2.Port.tcp(props.healthPort), 'Health checks of the engine tasks');
    Validations.of(nlbSecurityGroup).acknowledge({
      id: 'AwsSolutions-EC23',
      reason: `Public transfer endpoint: the NLB accepts UDP ${props.enginePort} from any client; sessions are authenticated by sealed tokens.`,
    });
    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, 'Nlb', {
      vpc,
      internetFacing: true,
      vpcSubnets: props.network.publicSubnets,
      crossZoneEnabled: true,
      securityGroups: [nlbSecurityGroup],
    });
    Validations.of(this.loadBalancer).acknowledge({
      id: 'AwsSolutions-ELB2',
      reason: 'NLB access logs are written only for TLS listeners; this NLB has one UDP listener, so there is nothing to log. VPC flow logs record the traffic.',
    });

    this.targetGroup = new elbv2.NetworkTargetGroup(this, 'Targets', {
      vpc,
      port: props.enginePort,
      protocol: elbv2.Protocol.UDP,
      targetType: elbv2.TargetType.IP,
      deregistrationDelay: Duration.seconds(60),
      healthCheck: {
        protocol: elbv2.Protocol.TCP,
        port: String(props.healthPort),
        interval: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
    });
    this.targetGroup.addTarget(
      this.service.loadBalancerTarget({ containerName: container.containerName, containerPort: props.enginePort, protocol: ecs.Protocol.UDP }),
    );
    this.loadBalancer.addListener('Udp', {
      port: props.enginePort,
      protocol: elbv2.Protocol.UDP,
      defaultTargetGroups: [this.targetGroup],
    });

    this.engineHost = this.loadBalancer.loadBalancerDnsName;
  }
}
