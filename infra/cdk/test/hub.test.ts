/** Unit tests of FerryHub with aws-cdk-lib/assertions. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { binaryCode } from '../lib/code';
import { FerryHub } from '../lib/hub';
import { FerryHubProps } from '../lib/hub-props';
import { fixtureCode, REPO, synth } from './fixture';

const SOURCES = ['arn:aws:ecr:us-east-1:111111111111:repository/team/*'];
const DESTINATIONS = ['arn:aws:ecr:eu-west-1:222222222222:repository/mirror/*'];
const BASE: FerryHubProps = { code: fixtureCode(), config: { rules: [] }, sourceRepositoryArns: SOURCES };

function hub(props: Partial<FerryHubProps> = {}) {
  const out = synth((s) => new FerryHub(s, 'Hub', { ...BASE, ...props }));
  return { ...out, json: out.template.toJSON() as any };
}

/** Logical ID of the resource of `type` whose ID starts with Hub<name>. */
function idOf(json: any, type: string, name: string): string {
  const ids = Object.keys(json.Resources).filter(
    (id) => json.Resources[id].Type === type && new RegExp(`^Hub${name}[0-9A-F]{8}$`).test(id),
  );
  assert.equal(ids.length, 1, `${type} ${name}`);
  return ids[0];
}

/** Sid -> [actions, resources] of a role's inline policy. */
function statements(json: any, role: string): Record<string, [unknown, unknown]> {
  const doc = json.Resources[idOf(json, 'AWS::IAM::Role', role)].Properties.Policies[0].PolicyDocument;
  return Object.fromEntries(doc.Statement.map((s: any) => [s.Sid, [s.Action, s.Resource]]));
}

const arn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

describe('FerryHub', () => {
  it('has the resources of the template (minimal props)', () => {
    const { template } = hub();
    const counts: Record<string, number> = {
      'AWS::SSM::Parameter': 1,
      'AWS::SQS::Queue': 3,
      'AWS::SQS::QueuePolicy': 2,
      'AWS::Events::EventBus': 1,
      'AWS::DynamoDB::Table': 1,
      'AWS::Logs::LogGroup': 3,
      'AWS::IAM::Role': 3,
      'AWS::Lambda::Function': 3,
      'AWS::Lambda::EventInvokeConfig': 2,
      'AWS::Lambda::EventSourceMapping': 1,
      'AWS::Events::Rule': 3,
      'AWS::Lambda::Permission': 3,
      'AWS::CloudWatch::Alarm': 15,
      'AWS::CloudWatch::Dashboard': 1,
      'AWS::SNS::Topic': 0,
      'AWS::SNS::Subscription': 0,
    };
    for (const [type, n] of Object.entries(counts)) {
      template.resourceCountIs(type, n);
    }
  });

  it('makes a FIFO jobs queue with a redrive to a FIFO DLQ, consumed with ReportBatchItemFailures', () => {
    const { template, json } = hub({ replicateTimeout: 300, replicateBatchSize: 5 });
    const dlq = idOf(json, 'AWS::SQS::Queue', 'JobsDeadLetterQueue');
    const jobs = idOf(json, 'AWS::SQS::Queue', 'JobsQueue');
    assert.equal(json.Resources[dlq].Properties.FifoQueue, true);
    assert.deepEqual(json.Resources[jobs].Properties, {
      FifoQueue: true,
      ContentBasedDeduplication: false,
      DeduplicationScope: 'messageGroup',
      FifoThroughputLimit: 'perMessageGroupId',
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 345600,
      VisibilityTimeout: 1800,
      RedrivePolicy: { deadLetterTargetArn: arn(dlq), maxReceiveCount: 5 },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: arn(jobs),
      FunctionName: { Ref: idOf(json, 'AWS::Lambda::Function', 'ReplicateFunction') },
      BatchSize: 5,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 10 },
    });
  });

  it("lets only Ferry's functions (and the listed senders) send jobs", () => {
    const senders = ['arn:aws:iam::111111111111:role/ferry-operations'];
    const { template, json } = hub({ jobsQueueSenderArns: senders });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({
            Effect: 'Deny',
            Principal: '*',
            Action: 'sqs:SendMessage',
            Condition: {
              ArnNotEquals: {
                'aws:PrincipalArn': [
                  arn(idOf(json, 'AWS::IAM::Role', 'DispatchRole')),
                  arn(idOf(json, 'AWS::IAM::Role', 'ReconcileRole')),
                  arn(idOf(json, 'AWS::IAM::Role', 'ReplicateRole')),
                ],
              },
              ArnNotLike: { 'aws:PrincipalArn': senders },
            },
          }),
        ],
      },
    });
  });

  it('grants each role exactly the actions and resources of the template (minimal props)', () => {
    const { json } = hub();
    const jobs = arn(idOf(json, 'AWS::SQS::Queue', 'JobsQueue'));
    const eventsDlq = arn(idOf(json, 'AWS::SQS::Queue', 'EventsDeadLetterQueue'));
    const log = (fn: string) => arn(idOf(json, 'AWS::Logs::LogGroup', `${fn}LogGroup`));
    const ledger = arn(idOf(json, 'AWS::DynamoDB::Table', 'LedgerTable'));
    const config = {
      'Fn::Sub': 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ferry/${AWS::StackName}/config',
    };
    const list = ['ecr:DescribeRepositories', 'ecr:DescribeImages', 'ecr:ListImages', 'ecr:BatchGetImage', 'ecr:ListImageReferrers'];
    assert.deepEqual(statements(json, 'DispatchRole'), {
      WriteOwnLogs: [['logs:CreateLogStream', 'logs:PutLogEvents'], log('Dispatch')],
      ReadConfiguration: ['ssm:GetParameter', config],
      SendJobs: ['sqs:SendMessage', jobs],
      AsyncDeadLetters: ['sqs:SendMessage', eventsDlq],
      ReadPullThroughCacheRules: ['ecr:DescribePullThroughCacheRules', '*'],
      EcrRegistryLogin: ['ecr:GetAuthorizationToken', '*'],
      JudgeGates: [
        [
          'ecr:BatchGetImage',
          'ecr:GetDownloadUrlForLayer',
          'ecr:DescribeImages',
          'ecr:DescribeImageScanFindings',
          'ecr:ListImageReferrers',
        ],
        SOURCES,
      ],
      PublishGateResults: ['events:PutEvents', arn(idOf(json, 'AWS::Events::EventBus', 'ResultEventBus'))],
    });
    assert.deepEqual(statements(json, 'ReplicateRole'), {
      WriteOwnLogs: [['logs:CreateLogStream', 'logs:PutLogEvents'], log('Replicate')],
      ReadConfiguration: ['ssm:GetParameter', config],
      ConsumeJobs: [
        ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'],
        jobs,
      ],
      RequeueDestinations: ['sqs:SendMessage', jobs],
      PublishResults: ['events:PutEvents', arn(idOf(json, 'AWS::Events::EventBus', 'ResultEventBus'))],
      RecordFailures: [['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'], ledger],
      EcrRegistryLogin: ['ecr:GetAuthorizationToken', '*'],
      ReadAccountSettings: ['ecr:GetAccountSetting', '*'],
      ReadSigningConfiguration: ['ecr:GetSigningConfiguration', '*'],
      ReadPullThroughCacheRules: ['ecr:DescribePullThroughCacheRules', '*'],
      PullFromSources: [
        [
          'ecr:BatchGetImage',
          'ecr:GetDownloadUrlForLayer',
          'ecr:BatchCheckLayerAvailability',
          'ecr:DescribeImages',
          'ecr:DescribeRepositories',
          'ecr:ListImages',
          'ecr:ListImageReferrers',
          'ecr:DescribeImageScanFindings',
        ],
        SOURCES,
      ],
    });
    assert.deepEqual(statements(json, 'ReconcileRole'), {
      WriteOwnLogs: [['logs:CreateLogStream', 'logs:PutLogEvents'], log('Reconcile')],
      ReadConfiguration: ['ssm:GetParameter', config],
      SendJobs: ['sqs:SendMessage', jobs],
      ReadJobsBacklog: ['sqs:GetQueueAttributes', jobs],
      AsyncDeadLetters: ['sqs:SendMessage', eventsDlq],
      ReadFailuresKeepCursor: [['dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:PutItem'], ledger],
      EcrRegistryLogin: ['ecr:GetAuthorizationToken', '*'],
      ReadRegistrySettings: [['ecr:DescribePullThroughCacheRules', 'ecr:GetSigningConfiguration'], '*'],
      ListSources: [[...list, 'ecr:DescribeImageScanFindings', 'ecr:GetDownloadUrlForLayer'], SOURCES],
    });
  });

  it('adds the optional statements only when their props are set, never AssumeRole to reconcile', () => {
    const keys = ['arn:aws:kms:eu-west-1:222222222222:key/1'];
    const roles = ['arn:aws:iam::*:role/ferry-destination-*'];
    const secrets = ['arn:aws:secretsmanager:us-east-1:111111111111:secret:ferry/x'];
    const { json } = hub({
      destinationRepositoryArns: DESTINATIONS,
      destinationRoleArns: roles,
      credentialSecretArns: secrets,
      kmsKeyArns: keys,
      tracingMode: 'Active',
      organizationAccess: 'role',
      organizationRoleArn: 'arn:aws:iam::999999999999:role/reader',
    });
    const replicate = statements(json, 'ReplicateRole');
    assert.deepEqual(replicate.PushToDestinations[1], DESTINATIONS);
    assert.deepEqual(replicate.AssumeDestinationRoles, ['sts:AssumeRole', roles]);
    assert.deepEqual(replicate.ReadRegistryCredentials, ['secretsmanager:GetSecretValue', secrets]);
    assert.deepEqual(replicate.CreateKmsEncryptedRepositories, [['kms:DescribeKey', 'kms:CreateGrant'], keys]);
    const reconcile = statements(json, 'ReconcileRole');
    assert.deepEqual(reconcile.ListDestinations[1], DESTINATIONS);
    assert.equal(reconcile.AssumeDestinationRoles, undefined);
    assert.equal(reconcile.CreateKmsEncryptedRepositories, undefined);
    for (const role of ['DispatchRole', 'ReplicateRole', 'ReconcileRole']) {
      const s = statements(json, role);
      assert.deepEqual(s.AssumeOrganizationReader, ['sts:AssumeRole', 'arn:aws:iam::999999999999:role/reader']);
      assert.deepEqual(s.XRayTraces, [['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], '*']);
      assert.equal(s.ReadOrganization, undefined);
    }
  });

  it('lets reconcile assume the destinations\' read roles only, and only when given', () => {
    const writeRoles = ['arn:aws:iam::*:role/ferry-destination-*'];
    const readRoles = ['arn:aws:iam::*:role/ferry-destination-read-*'];
    /** The reconcile role's statements granting an sts: action. */
    const sts = (json: any) =>
      json.Resources[idOf(json, 'AWS::IAM::Role', 'ReconcileRole')].Properties.Policies[0].PolicyDocument.Statement.filter(
        (s: any) => [s.Action].flat().some((a: string) => a.startsWith('sts:')),
      );
    // With both allow-lists: replicate assumes the destination roles, reconcile the read roles.
    const both = hub({ destinationRoleArns: writeRoles, destinationReadRoleArns: readRoles }).json;
    assert.deepEqual(statements(both, 'ReplicateRole').AssumeDestinationRoles, ['sts:AssumeRole', writeRoles]);
    assert.deepEqual(sts(both), [
      { Sid: 'AssumeDestinationReadRoles', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: readRoles },
    ]);
    // A write role (ferry-destination-<region>) is not among them.
    const pattern = new RegExp(`^${readRoles[0].replace(/[.]/g, '\\.').replace(/\*/g, '.*')}$`);
    assert.ok(pattern.test('arn:aws:iam::222222222222:role/ferry-destination-read-eu-west-1'));
    assert.ok(!pattern.test('arn:aws:iam::222222222222:role/ferry-destination-eu-west-1'));
    // Without destinationReadRoleArns reconcile assumes nothing, whatever destinationRoleArns says.
    assert.deepEqual(sts(hub({ destinationRoleArns: writeRoles }).json), []);
    assert.deepEqual(sts(hub().json), []);
    // The organization reader stays its only other sts grant.
    const org = hub({
      destinationReadRoleArns: readRoles,
      organizationAccess: 'role',
      organizationRoleArn: 'arn:aws:iam::999999999999:role/reader',
    }).json;
    assert.deepEqual(
      sts(org).map((s: any) => [s.Sid, s.Resource]),
      [
        ['AssumeDestinationReadRoles', readRoles],
        ['AssumeOrganizationReader', 'arn:aws:iam::999999999999:role/reader'],
      ],
    );
  });

  it('gives every function its environment, architecture and log group', () => {
    const { json } = hub({ architecture: 'x86_64', organizationAccess: 'direct', organizationCacheSeconds: 60 });
    const env = (fn: string) => {
      const props = json.Resources[idOf(json, 'AWS::Lambda::Function', `${fn}Function`)].Properties;
      assert.deepEqual(props.Architectures, ['x86_64']);
      assert.deepEqual(props.LoggingConfig.LogGroup, { Ref: idOf(json, 'AWS::Logs::LogGroup', `${fn}LogGroup`) });
      return Object.keys(props.Environment.Variables).sort();
    };
    const common = ['FERRY_CONFIG_PARAMETER', 'FERRY_ORGANIZATION_TTL_SECONDS', 'RUST_LOG'];
    assert.deepEqual(
      env('Dispatch'),
      [...common, 'FERRY_DESTINATIONS_PER_JOB', 'FERRY_EVENT_BUS_NAME', 'FERRY_JOBS_QUEUE_URL'].sort(),
    );
    assert.deepEqual(
      env('Replicate'),
      [...common, 'FERRY_EVENT_BUS_NAME', 'FERRY_JOB_CONCURRENCY', 'FERRY_JOBS_QUEUE_URL', 'FERRY_LEDGER_TABLE'].sort(),
    );
    assert.deepEqual(
      env('Reconcile'),
      [
        ...common,
        'FERRY_DESTINATIONS_PER_JOB',
        'FERRY_JOBS_QUEUE_URL',
        'FERRY_LEDGER_TABLE',
        'FERRY_MAX_JOBS_PER_RUN',
      ].sort(),
    );
  });

  it('routes successful ECR pushes and deletes to dispatch, with retries and a DLQ', () => {
    const { template, json } = hub();
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ecr'],
        'detail-type': ['ECR Image Action', 'ECR Referrer Action'],
        detail: { result: ['SUCCESS'], 'action-type': ['PUSH', 'DELETE', 'UPDATE_STORAGE_CLASS'] },
      },
      Targets: [
        {
          Id: 'dispatch',
          Arn: arn(idOf(json, 'AWS::Lambda::Function', 'DispatchFunction')),
          RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 10 },
          DeadLetterConfig: { Arn: arn(idOf(json, 'AWS::SQS::Queue', 'EventsDeadLetterQueue')) },
        },
      ],
    });
  });

  it('routes ECR and Inspector scan completions to dispatch, with retries and a DLQ', () => {
    const { template, json } = hub();
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ecr', 'aws.inspector2'],
        'detail-type': ['ECR Image Scan', 'Inspector2 Scan'],
      },
      Targets: [
        {
          Id: 'dispatch',
          Arn: arn(idOf(json, 'AWS::Lambda::Function', 'DispatchFunction')),
          RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 10 },
          DeadLetterConfig: { Arn: arn(idOf(json, 'AWS::SQS::Queue', 'EventsDeadLetterQueue')) },
        },
      ],
    });
  });

  it('subscribes the alarm e-mail and points every alarm at the topic', () => {
    const { template, json } = hub({ alarmEmail: 'ops@example.com' });
    template.resourceCountIs('AWS::SNS::Subscription', 1);
    const topic = idOf(json, 'AWS::SNS::Topic', 'AlarmTopic');
    const alarms = Object.values<any>(json.Resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
    assert.equal(alarms.length, 15);
    for (const alarm of alarms) {
      assert.deepEqual(alarm.Properties.AlarmActions, [{ Ref: topic }]);
    }
  });

  it('reads an existing parameter, decrypting with its key for that parameter only', () => {
    const { template, json } = hub({
      config: undefined,
      existingConfigParameterName: '/ferry/secure',
      configKmsKeyArn: 'arn:aws:kms:us-east-1:111111111111:key/k',
    });
    template.resourceCountIs('AWS::SSM::Parameter', 0);
    const s = statements(json, 'DispatchRole');
    assert.deepEqual(s.DecryptConfiguration, ['kms:Decrypt', 'arn:aws:kms:us-east-1:111111111111:key/k']);
  });

  it('refuses props the template refuses', () => {
    const refused: [Partial<FerryHubProps>, RegExp][] = [
      [{ config: { rules: 'no' } }, /does not match schema/],
      [{ existingConfigParameterName: '/ferry/x' }, /exactly one/],
      [{ configKmsKeyArn: 'arn:aws:kms:us-east-1:111111111111:key/k' }, /existingConfigParameterName/],
      [{ organizationAccess: 'role' }, /organizationRoleArn/],
      [{ organizationRoleArn: 'arn:aws:iam::999999999999:role/r' }, /organizationRoleArn/],
      [{ sourceRepositoryArns: [] }, /sourceRepositoryArns is required/],
      [{ sourceRepositoryArns: ['arn:aws:s3:::bucket'] }, /does not match/],
      [{ replicateTimeout: 42 as any }, /replicateTimeout/],
      [{ replicateBatchSize: 11 }, /replicateBatchSize/],
      [{ jobsQueueSenderArns: ['arn:aws:iam::111111111111:role/*'] }, /jobsQueueSenderArns/],
      [{ reconcileSchedule: 'every hour' }, /reconcileSchedule/],
    ];
    for (const [props, message] of refused) {
      assert.throws(() => hub(props), message, JSON.stringify(props));
    }
  });

  it('refuses an inline configuration holding an externalId (it belongs in a SecureString)', () => {
    const config = {
      rules: [{ destinations: [{ region: 'us-east-1', registryId: '444455556666', roleArn: 'arn:aws:iam::444455556666:role/r', externalId: 'x1' }] }],
    };
    assert.throws(() => hub({ config }), /SecureString/);
  });

  it('takes prebuilt code from bootstrap.zip when there is one, and fails without code', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cdk-zip-'));
    for (const b of ['dispatch', 'replicate', 'reconcile']) {
      fs.mkdirSync(path.join(dir, b));
      fs.writeFileSync(path.join(dir, b, 'bootstrap.zip'), 'PK fixture');
    }
    const { stack } = synth((s) => new FerryHub(s, 'Hub', { ...BASE, code: { kind: 'prebuilt', directory: dir } }));
    const assets = stack.node.findAll().filter((c) => c.node.id === 'Code');
    assert.equal(assets.length, 3);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cdk-empty-'));
    assert.throws(() => hub({ code: { kind: 'prebuilt', directory: empty } }), /make package/);
  });

  it('builds from source with cargo lambda for the binary and architecture (bundling not run here)', () => {
    const code = binaryCode({ kind: 'source', manifestPath: path.join(REPO, 'Cargo.toml') }, 'replicate', 'x86_64');
    assert.ok(code instanceof lambda.AssetCode);
    assert.equal(code.path, REPO);
    const command = (code as any).options.bundling.command.join(' ');
    assert.match(command, /cargo lambda build .*--release --x86-64 --bin replicate/);
  });
});
