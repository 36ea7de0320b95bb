import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  readonly logRetention: logs.RetentionDays;
}

/**
 * The VPC: two AZs, public subnets (the internet-facing NLB) and private isolated subnets (the engine
 * tasks), no NAT gateways.
 *
 * The engine runs in the isolated subnets and reaches AWS only through VPC endpoints: gateway endpoints for
 * S3 (image layers and, above all, the file bytes themselves) and DynamoDB (free, and traffic stays on
 * the AWS network), and interface endpoints for what an isolated Fargate task also needs: ECR API + ECR
 * Docker (image pull), CloudWatch Logs (awslogs driver) and Secrets Manager (the token keyring). So the
 * tasks get no public IP and have no route to the internet; clients reach them only through the NLB on the
 * transfer port. The price is the interface endpoints (4 services x 2 AZs, about $60/month); running the
 * tasks in the public subnets with public IPs would save that, at the cost of tasks addressable from the
 * internet and S3 traffic leaving through the internet gateway.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  /** Where the engine tasks run. */
  readonly engineSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /** Where the internet-facing load balancer lives. */
  readonly publicSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PUBLIC };
  /** The VPC's address range as a literal (security group rules read better, and cdk-nag can check them). */
  readonly cidr = '10.40.0.0/16';

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(this.cidr),
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'engine', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 },
      ],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [this.engineSubnets] },
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [this.engineSubnets] },
      },
    });

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });

    const interfaceEndpoints = {
      EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
      EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
      Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    };
    const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc,
      description: 'Interface VPC endpoints: HTTPS from inside the VPC only',
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(this.cidr), ec2.Port.tcp(443), 'AWS API calls from the VPC');
    for (const [name, service] of Object.entries(interfaceEndpoints)) {
      this.vpc.addInterfaceEndpoint(name, {
        service,
        subnets: this.engineSubnets,
        privateDnsEnabled: true,
        securityGroups: [endpointSecurityGroup],
        open: false,
      });
    }
  }
}
