import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validations, type PolicyValidationPluginReport } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestStack, type TestStack } from './synth';

/**
 * cdk-nag v3 is a policy-validation plugin (not an Aspect emitting annotations): registered on the App
 * as infra/bin does, it fails synthesis on any unacknowledged error. `validateScope` lists every
 * unacknowledged finding, warnings included, so the assertion shows exactly what is wrong.
 */
function nag(built: TestStack): PolicyValidationPluginReport {
  Validations.of(built.app).addPlugins(new AwsSolutionsChecks(built.app));
  built.app.synth(); // throws with the validation report if an error is unacknowledged
  return new AwsSolutionsChecks().validateScope(built.stack);
}

function findings(report: PolicyValidationPluginReport): string[] {
  return report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.severity} ${v.ruleName} at ${r.constructPath ?? r.resourceLogicalId}`));
}

/** Every acknowledgement in the tree: rule id → reason, with the path it was made at. */
function acknowledgements(root: IConstruct): { path: string; id: string; reason: string }[] {
  return root.node
    .findAll()
    .flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id, reason }))),
    );
}

describe('cdk-nag AwsSolutions', () => {
  let built: TestStack;
  let report: PolicyValidationPluginReport;

  beforeAll(() => {
    built = buildTestStack();
    report = nag(built);
  });
  afterAll(() => built?.cleanup());

  it('has no unacknowledged errors or warnings', () => {
    expect(findings(report)).toEqual([]);
  });

  it('gives every acknowledgement a specific reason', () => {
    // Ours; aws-cdk-lib records a few of its own for the CloudFormation validator (CloudFormation-Validate::...).
    const acks = acknowledgements(built.stack).filter((a) => a.id.includes('AwsSolutions-'));
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      expect(ack.reason.length, `${ack.id} at ${ack.path}: reason too short`).toBeGreaterThanOrEqual(40);
    }
    // Wildcard (IAM5) acknowledgements name the exact finding, never the whole rule.
    for (const ack of acks.filter((a) => a.id.includes('IAM5'))) expect(ack.id).toMatch(/IAM5\[.+\]$/);
  });
});

describe('cdk-nag AwsSolutions with the console built (web/dist)', () => {
  let built: TestStack;
  let report: PolicyValidationPluginReport;
  let dist: string;

  beforeAll(() => {
    dist = mkdtempSync(join(tmpdir(), 'slipstream-web-dist-'));
    mkdirSync(join(dist, 'assets'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>Slipstream</title>');
    writeFileSync(join(dist, 'assets', 'app.js'), 'console.log("slipstream")');
    built = buildTestStack({ consoleAssetDir: dist });
    report = nag(built);
  });
  afterAll(() => {
    built?.cleanup();
    rmSync(dist, { recursive: true, force: true });
  });

  it('uploads the console and invalidates CloudFront', () => {
    Template.fromStack(built.stack).resourceCountIs('Custom::CDKBucketDeployment', 1);
  });

  it('uploads console/config.json with the API URL, resolved at deploy time', () => {
    Template.fromStack(built.stack).hasResourceProperties('Custom::CDKBucketDeployment', {
      SourceObjectKeys: [Match.stringLikeRegexp('\\.zip$'), Match.stringLikeRegexp('\\.zip$')],
      SourceMarkers: [{}, { '<<marker:0xbaba:0>>': { 'Fn::GetAtt': [Match.stringLikeRegexp('^ApiHttpApi'), 'ApiEndpoint'] } }],
      DistributionPaths: ['/*'],
    });
  });

  it('has no unacknowledged errors or warnings', () => {
    expect(findings(report)).toEqual([]);
  });
});
