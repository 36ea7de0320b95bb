import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { configFromContext } from '../lib/config';
import { SlipstreamStack } from '../lib/slipstream-stack';

const app = new App();
const config = configFromContext((key) => app.node.tryGetContext(key));
new SlipstreamStack(app, app.node.tryGetContext('stackName') ?? 'Slipstream', {
  config,
  description: 'Slipstream: high-speed transfers for S3 buckets (UDP engine on Fargate, HTTP API on Lambda)',
});
// cdk-nag findings fail `cdk synth`; every acknowledgement in infra/lib carries its reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
