import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiRoutes, routeGroups, type RouteGroup } from '../../infra/lib/api';
import { buildTestStack, testBuckets, testConsoleOrigins, type TestStack } from './synth';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown };

let built: TestStack;
let template: Template;
let resources: Record<string, Resource>;

beforeAll(() => {
  built = buildTestStack();
  template = Template.fromStack(built.stack);
  resources = template.toJSON().Resources as Record<string, Resource>;
});

afterAll(() => built?.cleanup());

function ofType(type: string): [string, Resource][] {
  return Object.entries(resources).filter(([, r]) => r.Type === type);
}

function list<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** Every IAM statement in the template, with the logical id of the role it belongs to. */
function statements(): { role: string; statement: Statement }[] {
  const out: { role: string; statement: Statement }[] = [];
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type === 'AWS::IAM::Policy') {
      for (const role of r.Properties.Roles as { Ref: string }[]) {
        for (const statement of r.Properties.PolicyDocument.Statement as Statement[]) out.push({ role: role.Ref, statement });
      }
    }
    if (r.Type === 'AWS::IAM::Role') {
      for (const policy of (r.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]) {
        for (const statement of policy.PolicyDocument.Statement) out.push({ role: id, statement });
      }
    }
  }
  return out;
}

/** A readable name for a policy resource: table, index, secret, bucket:<name>, objects:<name>, logs, ... */
function describeResource(resource: unknown): string {
  const text = JSON.stringify(resource);
  const bucket = /:s3:::([a-z0-9.-]+)(\/\*)?"/.exec(text);
  if (bucket) return `${bucket[2] ? 'objects' : 'bucket'}:${bucket[1]}`;
  if (text.includes('/index/')) return `index:${text.split('/index/')[1]!.replace(/"\]\]\}$/, '')}`;
  const ref = /"(?:Ref|Fn::GetAtt)":\[?"([A-Za-z0-9]+)"/.exec(text);
  if (ref) {
    const type = resources[ref[1]!]?.Type;
    if (type === 'AWS::DynamoDB::Table') return 'table';
    if (type === 'AWS::SecretsManager::Secret') return 'secret';
    if (type === 'AWS::Logs::LogGroup') return 'own-log-group';
  }
  return text;
}

/** role logical id → sorted "action on resource" grants */
function grantsByRole(): Map<string, string[]> {
  const byRole = new Map<string, string[]>();
  for (const { role, statement } of statements()) {
    for (const action of list(statement.Action)) {
      for (const resource of list(statement.Resource)) {
        const grants = byRole.get(role) ?? [];
        grants.push(`${action} on ${describeResource(resource)}`);
        byRole.set(role, grants);
      }
    }
  }
  for (const grants of byRole.values()) grants.sort();
  return byRole;
}

function roleOfFunction(group: RouteGroup): string {
  const [, fn] = ofType('AWS::Lambda::Function').find(([, r]) => r.Properties.Description === `Slipstream API: ${group} routes`)!;
  return (fn.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
}

const tableRW = [
  'dynamodb:BatchGetItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DeleteItem',
  'dynamodb:DescribeTable',
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:UpdateItem',
].flatMap((a) => [`${a} on table`, `${a} on index:gsi1`]);
const secretRead = ['secretsmanager:DescribeSecret on secret', 'secretsmanager:GetSecretValue on secret'];
const logs = ['logs:CreateLogStream on own-log-group', 'logs:PutLogEvents on own-log-group'];
const onBuckets = (...actions: string[]) => testBuckets.flatMap((b) => actions.map((a) => `${a} on bucket:${b}`));
const onObjects = (...actions: string[]) => testBuckets.flatMap((b) => actions.map((a) => `${a} on objects:${b}`));

describe('network', () => {
  it('has two AZs of public and isolated subnets and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::EIP', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 4);
    // The only default routes are the public subnets' routes to the internet gateway.
    for (const [, route] of ofType('AWS::EC2::Route')) {
      expect(route.Properties.GatewayId).toBeDefined();
      expect(route.Properties.NatGatewayId).toBeUndefined();
    }
  });

  it('reaches AWS through VPC endpoints and logs flows', () => {
    const services = ofType('AWS::EC2::VPCEndpoint').map(([, r]) => `${r.Properties.VpcEndpointType}:${JSON.stringify(r.Properties.ServiceName)}`);
    for (const [type, suffix] of [
      ['Gateway', '.s3"'],
      ['Gateway', '.dynamodb"'],
      ['Interface', '.ecr.api"'],
      ['Interface', '.ecr.dkr"'],
      ['Interface', '.logs"'],
      ['Interface', '.secretsmanager"'],
    ] as const) {
      expect(services.some((s) => s.startsWith(type) && s.includes(suffix)), `${type} endpoint ${suffix}`).toBe(true);
    }
    template.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL' });
  });
});

describe('engine', () => {
  it('has an internet-facing NLB with a UDP 33001 listener', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Type: 'network', Scheme: 'internet-facing' });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Protocol: 'UDP',
      Port: 33001,
      DefaultActions: [Match.objectLike({ Type: 'forward', TargetGroupArn: Match.anyValue() })],
    });
  });

  it('forwards to an IP target group with a TCP health check on 8081', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Protocol: 'UDP',
      Port: 33001,
      TargetType: 'ip',
      HealthCheckProtocol: 'TCP',
      HealthCheckPort: '8081',
    });
  });

  it('runs a Fargate service in the isolated subnets, registered on UDP 33001', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
      LoadBalancers: [Match.objectLike({ ContainerName: 'engine', ContainerPort: 33001 })],
    });
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
    const [, service] = ofType('AWS::ECS::Service')[0]!;
    const subnets = JSON.stringify(service.Properties.NetworkConfiguration.AwsvpcConfiguration.Subnets);
    expect(subnets).toContain('engineSubnet');
    // The first tasks start only after the token keyring has been written.
    const keyring = ofType('Custom::SlipstreamTokenKeyring')[0]![0];
    expect(service.DependsOn).toContain(keyring);
  });

  it('gives the container its configuration, ports and logs', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '1024',
      Memory: '2048',
      RequiresCompatibilities: ['FARGATE'],
      ContainerDefinitions: [
        Match.objectLike({
          Name: 'engine',
          PortMappings: [
            Match.objectLike({ ContainerPort: 33001, Protocol: 'udp' }),
            Match.objectLike({ ContainerPort: 8081, Protocol: 'tcp' }),
          ],
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
          Environment: Match.arrayWith([
            { Name: 'SLIPSTREAM_TABLE_NAME', Value: Match.objectLike({ Ref: Match.stringLikeRegexp('^StateTable') }) },
            { Name: 'SLIPSTREAM_TOKEN_SECRET_ARN', Value: Match.objectLike({ Ref: Match.stringLikeRegexp('^TokenKeysSecret') }) },
            { Name: 'SLIPSTREAM_BUCKETS', Value: testBuckets.join(',') },
            { Name: 'SLIPSTREAM_ENGINE_PORT', Value: '33001' },
            { Name: 'SLIPSTREAM_HEALTH_PORT', Value: '8081' },
          ]),
        }),
      ],
    });
  });

  it('admits UDP 33001 from anywhere and health checks from the VPC only', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^Slipstream engine tasks'),
      SecurityGroupIngress: [
        Match.objectLike({ CidrIp: '0.0.0.0/0', IpProtocol: 'udp', FromPort: 33001, ToPort: 33001 }),
        Match.objectLike({ CidrIp: '10.40.0.0/16', IpProtocol: 'tcp', FromPort: 8081, ToPort: 8081 }),
      ],
    });
  });

  it('lets the NLB send only transfers and health checks to the tasks', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^Slipstream engine NLB'),
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '0.0.0.0/0', IpProtocol: 'udp', FromPort: 33001, ToPort: 33001 })],
    });
    const egress = ofType('AWS::EC2::SecurityGroupEgress').map(([, r]) => `${r.Properties.IpProtocol}:${r.Properties.FromPort}`);
    expect(egress.sort()).toEqual(['tcp:8081', 'udp:33001']);
    template.resourcePropertiesCountIs(
      'AWS::EC2::SecurityGroupEgress',
      { DestinationSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EngineTaskSecurityGroup'), 'GroupId'] } },
      2,
    );
  });

  it('gives the task role only the engine permissions', () => {
    const [, service] = ofType('AWS::ECS::TaskDefinition')[0]!;
    const taskRole = (service.Properties.TaskRoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
    expect(grantsByRole().get(taskRole)).toEqual(
      [
        ...tableRW,
        ...secretRead,
        ...onBuckets('s3:GetBucketObjectLockConfiguration', 's3:ListBucket'),
        ...onObjects('s3:AbortMultipartUpload', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject'),
      ].sort(),
    );
  });

  it('stages only what the Dockerfile needs as the image build context', () => {
    const assets = JSON.parse(readFileSync(join(built.app.outdir, 'SlipstreamTest.assets.json'), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string } }>;
    };
    const images = Object.values(assets.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]!.source.dockerFile).toBe('engine-service/Dockerfile');
    const dir = join(built.app.outdir, images[0]!.source.directory);
    const files: string[] = [];
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const path = join(d, name);
        if (statSync(path).isDirectory()) walk(path);
        else files.push(relative(dir, path));
      }
    };
    walk(dir);
    expect(files).toContain('engine-service/Dockerfile');
    expect(files).toContain('package-lock.json');
    expect(files.some((f) => f.startsWith('core/'))).toBe(true);
    const allowed = /^(package\.json|package-lock\.json|tsconfig\.json|(protocol|contracts|core|engine-service)\/.+)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files.filter((f) => f.includes('node_modules') || f.endsWith('.test.ts'))).toEqual([]);
  });
});

describe('state', () => {
  it('is an on-demand table with PITR, encryption, TTL on expiresAt and the gsi1 index', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: 'gsi1',
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
        }),
      ],
    });
  });
});

describe('token keys', () => {
  it('keeps the keyring in Secrets Manager, written once by a custom resource', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.hasResourceProperties('Custom::SlipstreamTokenKeyring', {
      SecretArn: { Ref: Match.stringLikeRegexp('^TokenKeysSecret') },
      KeyId: 'k1',
    });
    const [, writer] = ofType('AWS::Lambda::Function').find(([, r]) => String(r.Properties.Description).includes('token keyring'))!;
    const role = (writer.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
    expect(grantsByRole().get(role)).toEqual([...logs, ...secretRead, 'secretsmanager:PutSecretValue on secret'].sort());
  });
});

describe('api', () => {
  it('has one ARM64 Node.js function per route group', () => {
    const apiFunctions = ofType('AWS::Lambda::Function').filter(([, r]) => String(r.Properties.Description).startsWith('Slipstream API:'));
    expect(apiFunctions).toHaveLength(7);
    for (const [, fn] of apiFunctions) {
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Handler: 'index.handler' });
      expect(fn.Properties.LoggingConfig.LogGroup).toBeDefined();
    }
  });

  it('passes the configuration each function needs', () => {
    for (const group of routeGroups) {
      const [, fn] = ofType('AWS::Lambda::Function').find(([, r]) => r.Properties.Description === `Slipstream API: ${group} routes`)!;
      const env = fn.Properties.Environment.Variables as Record<string, unknown>;
      expect(env.SLIPSTREAM_BUCKETS).toBe(testBuckets.join(','));
      expect(env.SLIPSTREAM_ENGINE_PORT).toBe('33001');
      expect(JSON.stringify(env.SLIPSTREAM_TABLE_NAME)).toContain('StateTable');
      expect(JSON.stringify(env.SLIPSTREAM_ENGINE_HOST)).toContain('EngineNlb');
      expect(env.SLIPSTREAM_TOKEN_SECRET_ARN !== undefined, `${group} reads the keyring`).toBe(['files', 'fallback'].includes(group));
    }
  });

  it('routes every path to its group function', () => {
    const integrationToGroup = new Map<string, RouteGroup>();
    for (const [id, integration] of ofType('AWS::ApiGatewayV2::Integration')) {
      const fnId = (integration.Properties.IntegrationUri as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
      const description = String(resources[fnId]!.Properties.Description);
      integrationToGroup.set(id, /Slipstream API: (\w+) routes/.exec(description)![1] as RouteGroup);
    }
    const routes = Object.fromEntries(
      ofType('AWS::ApiGatewayV2::Route').map(([, r]) => {
        const target = JSON.stringify(r.Properties.Target);
        const integration = [...integrationToGroup.keys()].find((id) => target.includes(`"${id}"`))!;
        return [r.Properties.RouteKey as string, integrationToGroup.get(integration)];
      }),
    );
    expect(routes).toEqual({
      'GET /health': 'bucket',
      'OPTIONS /health': 'bucket',
      'GET /{bucket}': 'bucket',
      'PUT /{bucket}': 'bucket',
      'OPTIONS /{bucket}': 'bucket',
      'ANY /files/{proxy+}': 'files',
      'ANY /v1/buckets/{bucket}/preferences': 'preferences',
      'ANY /v1/buckets': 'objects',
      'ANY /v1/buckets/{bucket}/objects': 'objects',
      'ANY /v1/buckets/{bucket}/download-urls': 'objects',
      'ANY /v1/fallback/{proxy+}': 'fallback',
      'ANY /companion/{proxy+}': 'fallback',
      'ANY /v1/transfers/{id}/transport': 'fallback',
      'ANY /v1/transfers/{id}/finish': 'fallback',
      'ANY /v1/transfers/{id}/downloads': 'fallback',
      'ANY /v1/transfers/{id}/files/{index}/upload': 'fallback',
      'ANY /v1/transfers/{id}/files/{index}/parts': 'fallback',
      'ANY /v1/transfers/{id}/files/{index}/parts/{partNumber}': 'fallback',
      'ANY /v1/transfers/{id}/files/{index}/complete': 'fallback',
      'ANY /v1/transfers': 'transfers',
      'ANY /v1/transfers/{proxy+}': 'transfers',
      'ANY /v1/keys': 'keys',
      'ANY /v1/keys/{proxy+}': 'keys',
    });
    expect(apiRoutes.flatMap((r) => r.methods)).toHaveLength(Object.keys(routes).length);
  });

  it('logs access and throttles on the stage', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
    });
  });

  it('gives each function only what its routes use', () => {
    const grants = grantsByRole();
    const expected: Record<RouteGroup, string[]> = {
      bucket: [...tableRW, ...onBuckets('s3:GetBucketObjectLockConfiguration', 's3:ListBucket')],
      files: [...tableRW, ...secretRead, ...onBuckets('s3:GetBucketObjectLockConfiguration', 's3:ListBucket')],
      preferences: [...tableRW],
      objects: [...tableRW, ...onBuckets('s3:ListBucket'), ...onObjects('s3:GetObject')],
      fallback: [
        ...tableRW,
        ...secretRead,
        ...onBuckets('s3:GetBucketObjectLockConfiguration', 's3:ListBucket'),
        ...onObjects('s3:AbortMultipartUpload', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject'),
      ],
      transfers: [...tableRW, ...onObjects('s3:AbortMultipartUpload')],
      keys: [...tableRW],
    };
    for (const group of routeGroups) {
      expect(grants.get(roleOfFunction(group)), group).toEqual([...logs, ...expected[group]].sort());
    }
    // Own roles with inline grants: no AWSLambdaBasicExecutionRole on our functions.
    for (const group of routeGroups) {
      expect(resources[roleOfFunction(group)]!.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });
});

describe('IAM', () => {
  it('never grants "*" or "s3:*" actions', () => {
    for (const { statement } of statements()) {
      for (const action of list(statement.Action)) {
        expect(action).not.toBe('*');
        expect(action).not.toMatch(/^[a-z0-9-]+:\*$/);
      }
    }
  });

  it('uses Resource "*" only for actions without resource-level permissions', () => {
    // Each of these is acknowledged (with its reason) for cdk-nag where it is granted.
    const allowed = new Set(['ecr:GetAuthorizationToken']);
    const starred = statements().filter(({ statement }) => list(statement.Resource).includes('*'));
    expect(starred.flatMap(({ statement }) => list(statement.Action)).filter((a) => !allowed.has(a))).toEqual([]);
  });
});

describe('served buckets', () => {
  it('applies CORS and the abort-incomplete-multipart lifecycle rule to each served bucket', () => {
    const settings = ofType('Custom::SlipstreamBucketSettings').map(([, r]) => r.Properties);
    expect(settings.map((s) => s.BucketName).sort()).toEqual([...testBuckets].sort());
    for (const s of settings) {
      expect(s.AbortIncompleteMultipartAfterDays).toBe('3');
      const origins = JSON.stringify(s.AllowedOrigins);
      for (const origin of testConsoleOrigins) expect(origins).toContain(origin);
      // The console's own CloudFront URL.
      expect(origins).toMatch(/https:\/\/.*ConsoleDistribution.*DomainName/);
    }
  });

  it('lets the settings function touch only those two configurations of those buckets', () => {
    const [, fn] = ofType('AWS::Lambda::Function').find(([, r]) => String(r.Properties.Description).includes('served buckets'))!;
    const role = (fn.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!;
    expect(grantsByRole().get(role)).toEqual(
      [...logs, ...onBuckets('s3:GetBucketCORS', 's3:GetLifecycleConfiguration', 's3:PutBucketCORS', 's3:PutLifecycleConfiguration')].sort(),
    );
  });

  it('takes the lifecycle days from config', () => {
    const other = buildTestStack({ config: { abortIncompleteMultipartAfterDays: 7, buckets: ['slipstream-other'] } });
    try {
      Template.fromStack(other.stack).hasResourceProperties('Custom::SlipstreamBucketSettings', {
        BucketName: 'slipstream-other',
        AbortIncompleteMultipartAfterDays: '7',
      });
    } finally {
      other.cleanup();
    }
  });
});

describe('console', () => {
  it('serves a private bucket through CloudFront with OAC, HTTPS and security headers', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: Match.objectLike({ DestinationBucketName: Match.anyValue() }),
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
    template.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultRootObject: 'index.html',
        DefaultCacheBehavior: Match.objectLike({
          ViewerProtocolPolicy: 'redirect-to-https',
          ResponseHeadersPolicyId: Match.anyValue(),
        }),
        Logging: Match.objectLike({ Bucket: Match.anyValue() }),
      }),
    });
    template.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: Match.objectLike({
        SecurityHeadersConfig: Match.objectLike({
          StrictTransportSecurity: Match.objectLike({ Override: true }),
          ContentTypeOptions: { Override: true },
          FrameOptions: { FrameOption: 'DENY', Override: true },
        }),
      }),
    });
  });

  it('deploys no files while web/dist is not built', () => {
    expect(ofType('Custom::CDKBucketDeployment')).toEqual([]);
  });
});

describe('outputs', () => {
  it('exports the API URL, engine host, console URL and table name', () => {
    const outputs = template.toJSON().Outputs as Record<string, unknown>;
    for (const name of ['ApiUrl', 'EngineHost', 'EnginePort', 'ConsoleUrl', 'TableName']) expect(outputs[name], name).toBeDefined();
    template.hasOutput('EngineHost', { Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EngineNlb'), 'DNSName'] } });
  });
});

it('synthesizes for arm64 engines with another task size', () => {
  const other = buildTestStack({ config: { engineCpuArchitecture: 'arm64', engineCpu: 2048, engineMemoryMiB: 4096 } });
  try {
    Template.fromStack(other.stack).hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '2048',
      Memory: '4096',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    expect(existsSync(other.app.outdir)).toBe(true);
  } finally {
    other.cleanup();
  }
});
