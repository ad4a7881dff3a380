/** Unit tests of FerryDestination, FerryDestinationStackSet and FerryForwarder. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { CfnParameter, Stack } from 'aws-cdk-lib';
import { FerryDestination, FerryDestinationProps } from '../lib/destination';
import { FerryForwarder } from '../lib/forwarder';
import { FerryDestinationStackSet } from '../lib/stackset';
import { synth } from './fixture';

const REPLICATE = 'arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC';
const RECONCILE = 'arn:aws:iam::111111111111:role/ferry-ReconcileRole-DEF';
const BASE: FerryDestinationProps = {
  hubAccountId: '111111111111',
  hubReplicateRoleArn: REPLICATE,
  hubReconcileRoleArn: RECONCILE,
};
const UNDER_PREFIX = {
  'Fn::Sub': 'arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/golden/*',
};
/** Resource types of which an account and region has one (creating one replaces the account's). */
const ACCOUNT_WIDE = [
  'AWS::ECR::RegistryPolicy',
  'AWS::ECR::RegistryScanningConfiguration',
  'AWS::ECR::ReplicationConfiguration',
  'AWS::ECR::PullThroughCacheRule',
  'AWS::ECR::SigningConfiguration',
];

function types(json: any): string[] {
  return Object.values<any>(json.Resources)
    .map((r) => r.Type)
    .filter((t) => t !== 'AWS::CDK::Metadata')
    .sort();
}

function policy(json: any): Record<string, any> {
  const res = Object.values<any>(json.Resources).find((r) => r.Type === 'AWS::ECR::RegistryPolicy');
  return Object.fromEntries(res.Properties.PolicyText.Statement.map((s: any) => [s.Sid, s]));
}

describe('FerryDestination', () => {
  it('with its defaults creates no account-wide resource: the creation template and two roles', () => {
    const { template } = synth((s) => new FerryDestination(s, 'Destination', BASE));
    const found = types(template.toJSON());
    assert.deepEqual(found, ['AWS::ECR::RepositoryCreationTemplate', 'AWS::IAM::Role', 'AWS::IAM::Role']);
    assert.deepEqual(found.filter((t) => ACCOUNT_WIDE.includes(t)), []);
  });

  it('lets the replicate role push and both hub roles read under the prefix, nobody else', () => {
    const { template } = synth(
      (s) =>
        new FerryDestination(s, 'Destination', {
          ...BASE,
          manageRegistryPolicy: true,
          createAssumeRole: false,
          registryScanType: 'BASIC',
        }),
    );
    const s = policy(template.toJSON());
    assert.deepEqual(Object.keys(s), ['FerryPush', 'FerryReconcileRead']);
    assert.deepEqual(s.FerryPush.Principal, { AWS: REPLICATE });
    assert.equal(s.FerryPush.Action.length, 13);
    assert.deepEqual(s.FerryPush.Resource, UNDER_PREFIX);
    assert.deepEqual(s.FerryReconcileRead.Principal, { AWS: [REPLICATE, RECONCILE] });
    assert.deepEqual(s.FerryReconcileRead.Action, [
      'ecr:DescribeRepositories',
      'ecr:DescribeImages',
      'ecr:ListImages',
      'ecr:BatchGetImage',
      'ecr:ListImageReferrers',
    ]);
    template.resourceCountIs('AWS::IAM::Role', 0);
    template.hasResourceProperties('AWS::ECR::RepositoryCreationTemplate', {
      Prefix: 'golden',
      AppliedFor: ['REPLICATION', 'CREATE_ON_PUSH'],
      ImageTagMutability: 'IMMUTABLE',
      EncryptionConfiguration: { EncryptionType: 'AES256' },
    });
    template.hasResourceProperties('AWS::ECR::RegistryScanningConfiguration', {
      ScanType: 'BASIC',
      Rules: [{ ScanFrequency: 'SCAN_ON_PUSH', RepositoryFilters: [{ FilterType: 'WILDCARD', Filter: 'golden/*' }] }],
    });
  });

  it('trusts the hub account root only when asked, and then for native replication too', () => {
    const { template } = synth(
      (s) =>
        new FerryDestination(s, 'Destination', {
          hubAccountId: '111111111111',
          trustHubAccountRoot: true,
          repositoryPrefix: 'ROOT',
          allowNativeReplication: true,
          manageRegistryPolicy: true,
          externalId: 'x-1234',
        }),
    );
    const s = policy(template.toJSON());
    const root = { AWS: { 'Fn::Sub': 'arn:${AWS::Partition}:iam::111111111111:root' } };
    assert.deepEqual(s.FerryPush.Principal, root);
    assert.deepEqual(s.FerryReconcileRead.Principal, root);
    assert.deepEqual(s.NativeReplication.Action, ['ecr:ReplicateImage', 'ecr:CreateRepository']);
    assert.throws(
      () => synth((st) => new FerryDestination(st, 'D', { hubAccountId: '111111111111', repositoryPrefix: 'x' })),
      /trustHubAccountRoot/,
    );
    assert.throws(
      () => synth((st) => new FerryDestination(st, 'D', { hubAccountId: '111111111111', trustHubAccountRoot: true })),
      /externalId/,
    );
    assert.throws(
      () => synth((st) => new FerryDestination(st, 'D', { ...BASE, hubReconcileRoleArn: undefined })),
      /together/,
    );
  });

  it('makes the write role for the replicate role only, pinned by ARN, with the external ID when given', () => {
    const { template } = synth((s) => {
      const externalId = new CfnParameter(Stack.of(s), 'ExternalId', { noEcho: true }).valueAsString;
      new FerryDestination(s, 'Destination', { ...BASE, externalId });
    });
    template.hasResourceProperties('AWS::IAM::Role', {
      RoleName: { 'Fn::Join': ['', ['ferry-destination-', { Ref: 'AWS::Region' }]] },
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Sid: 'FerryHub',
            Effect: 'Allow',
            Principal: { AWS: REPLICATE },
            Action: 'sts:AssumeRole',
            Condition: {
              ArnEquals: { 'aws:PrincipalArn': REPLICATE },
              StringEquals: { 'sts:ExternalId': { Ref: 'ExternalId' } },
            },
          },
        ],
      },
      Policies: [Match.objectLike({ PolicyName: 'ferry-destination' })],
    });
  });

  it('lets operators assume the read role, and the write role only with operatorWriteAccess', () => {
    const OPERATOR = 'arn:aws:iam::444444444444:role/ferry-operator';
    const trust = (props: FerryDestinationProps, name: string): string[] => {
      const { template } = synth((s) => new FerryDestination(s, 'Destination', props));
      const role = Object.values<any>(template.toJSON().Resources).find(
        (r) => r.Type === 'AWS::IAM::Role' && JSON.stringify(r.Properties.RoleName).includes(name),
      );
      return role.Properties.AssumeRolePolicyDocument.Statement.map((st: any) => st.Sid);
    };
    assert.deepEqual(trust({ ...BASE, operatorPrincipalArns: [OPERATOR] }, 'ferry-destination-read-'), ['FerryHubRead', 'OperatorRead']);
    assert.deepEqual(trust({ ...BASE, operatorPrincipalArns: [OPERATOR] }, '"ferry-destination-"'), ['FerryHub']);
    assert.deepEqual(
      trust({ ...BASE, operatorPrincipalArns: [OPERATOR], operatorWriteAccess: true }, '"ferry-destination-"'),
      ['FerryHub', 'OperatorBackfill'],
    );
    assert.deepEqual(trust(BASE, 'ferry-destination-read-'), ['FerryHubRead']);
  });

  it('becomes a service-managed StackSet over OUs whose template has no bootstrap dependency', () => {
    const { template } = synth(
      (s) =>
        new FerryDestinationStackSet(s, 'Destinations', {
          destination: BASE,
          organizationalUnitIds: ['ou-abcd-11111111'],
          regions: ['us-west-2', 'eu-west-1'],
        }),
    );
    const set = Object.values<any>(template.toJSON().Resources).find((r) => r.Type === 'AWS::CloudFormation::StackSet');
    assert.equal(set.Properties.PermissionModel, 'SERVICE_MANAGED');
    assert.deepEqual(set.Properties.AutoDeployment, { Enabled: true, RetainStacksOnAccountRemoval: false });
    assert.deepEqual(set.Properties.StackInstancesGroup, [
      { DeploymentTargets: { OrganizationalUnitIds: ['ou-abcd-11111111'] }, Regions: ['us-west-2', 'eu-west-1'] },
    ]);
    const body = JSON.parse(set.Properties.TemplateBody);
    assert.deepEqual(types(body), ['AWS::ECR::RepositoryCreationTemplate', 'AWS::IAM::Role', 'AWS::IAM::Role']);
    assert.equal(body.Parameters?.BootstrapVersion, undefined);
    assert.equal(set.Properties.Parameters, undefined);
  });

  it('keeps the external ID out of the TemplateBody: a NoEcho parameter of the body', () => {
    const SECRET = 'ferry-secret-external-id';
    const { template } = synth(
      (s) =>
        new FerryDestinationStackSet(s, 'Destinations', {
          destination: { ...BASE, externalId: SECRET },
          organizationalUnitIds: ['ou-abcd-11111111'],
          regions: ['us-west-2'],
        }),
    );
    const set = Object.values<any>(template.toJSON().Resources).find((r) => r.Type === 'AWS::CloudFormation::StackSet');
    assert.ok(!set.Properties.TemplateBody.includes(SECRET), 'the external ID is in the TemplateBody');
    const body = JSON.parse(set.Properties.TemplateBody);
    assert.deepEqual(body.Parameters.ExternalId.NoEcho, true);
    assert.deepEqual(set.Properties.Parameters, [{ ParameterKey: 'ExternalId', ParameterValue: SECRET }]);
  });
});

describe('FerryForwarder', () => {
  it('forwards ECR Image Action events to the hub default bus with a role, retries and a DLQ', () => {
    const { template } = synth((s) => new FerryForwarder(s, 'Forwarder', { hubRegion: 'us-east-1' }), {
      account: '111111111111',
      region: 'eu-west-1',
    });
    const bus = { 'Fn::Sub': 'arn:${AWS::Partition}:events:us-east-1:${AWS::AccountId}:event-bus/default' };
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.ecr'], 'detail-type': ['ECR Image Action', 'ECR Referrer Action'] },
      Targets: [Match.objectLike({ Id: 'ferry-hub', Arn: bus, RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 10 } })],
    });
    template.hasResourceProperties('AWS::IAM::Role', {
      Policies: [{ PolicyName: 'forward-to-hub', PolicyDocument: Match.objectLike({ Statement: [Match.objectLike({ Action: 'events:PutEvents', Resource: bus })] }) }],
    });
  });

  it('refuses the hub region, at synth time or (environment-agnostic) with a CloudFormation rule', () => {
    assert.throws(
      () =>
        synth((s) => new FerryForwarder(s, 'F', { hubRegion: 'us-east-1' }), { account: '111111111111', region: 'us-east-1' }),
      /hub region/,
    );
    const { template } = synth((s) => new FerryForwarder(s, 'F', { hubRegion: 'us-east-1' }));
    assert.equal(Object.keys(template.toJSON().Rules).filter((r) => r.startsWith('FNotTheHubRegion')).length, 1);
  });
});
