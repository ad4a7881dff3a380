/**
 * The three function roles of the hub, statement for statement those of
 * infra/template.yaml (DispatchRole, ReplicateRole, ReconcileRole): the same Sids, actions
 * and resources, a statement present exactly when the template's condition holds.
 */
import { Aws, Fn } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ECR_JUDGE_GATES, ECR_LIST, ECR_LIST_SOURCES, ECR_PULL, ECR_PUSH } from './actions';
import { ResolvedHubProps } from './hub-props';

/** A raw IAM statement (JSON, tokens allowed). */
export type Statement = Record<string, unknown>;

/** Resources of the hub that the role policies name. */
export interface HubRefs {
  readonly logGroupArn: string;
  readonly jobsQueueArn: string;
  readonly eventsDlqArn: string;
  readonly resultBusArn: string;
  readonly ledgerTableArn: string;
}

/** The function a role belongs to. */
export type HubFunction = 'dispatch' | 'replicate' | 'reconcile';

const DESCRIPTIONS: Record<HubFunction, string> = {
  dispatch: 'Ferry dispatch function (ECR event -> jobs)',
  replicate: 'Ferry replicate function (jobs -> image copies)',
  reconcile: 'Ferry reconcile function (drift -> jobs)',
};

function allow(sid: string, action: string | string[], resource: unknown, condition?: unknown): Statement {
  const statement: Statement = { Sid: sid, Effect: 'Allow', Action: action, Resource: resource };
  if (condition !== undefined) {
    statement.Condition = condition;
  }
  return statement;
}

/** ARN of an SSM parameter of this account and region, from its name (which starts with /). */
function parameterArn(name: string): string {
  return Fn.sub(`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter${name}`);
}

/** ARN of the configuration parameter the functions read. */
export function configParameterArn(p: ResolvedHubProps): string {
  return parameterArn(p.existingConfigParameterName ?? '/ferry/${AWS::StackName}/config');
}

/** Statements every role has: own logs, the configuration, its key. */
function common(p: ResolvedHubProps, refs: HubRefs): { head: Statement[]; configKey: Statement[] } {
  const head = [
    allow('WriteOwnLogs', ['logs:CreateLogStream', 'logs:PutLogEvents'], refs.logGroupArn),
    allow('ReadConfiguration', 'ssm:GetParameter', configParameterArn(p)),
  ];
  const configKey =
    p.configKmsKeyArn === undefined
      ? []
      : [
          allow('DecryptConfiguration', 'kms:Decrypt', p.configKmsKeyArn, {
            StringEquals: {
              'kms:ViaService': Fn.sub('ssm.${AWS::Region}.amazonaws.com'),
              'kms:EncryptionContext:PARAMETER_ARN': parameterArn(p.existingConfigParameterName ?? ''),
            },
          }),
        ];
  return { head, configKey };
}

/** Organization reading (role or direct, never both) and X-Ray: the tail of every policy. */
function tail(p: ResolvedHubProps): Statement[] {
  const out: Statement[] = [];
  if (p.organizationAccess === 'role' && p.organizationRoleArn !== undefined) {
    out.push(allow('AssumeOrganizationReader', 'sts:AssumeRole', p.organizationRoleArn));
  }
  if (p.organizationAccess === 'direct') {
    // Resource "*": ListAccounts has no resource type; the roots and units read have
    // ARNs naming the management account and organization ID this stack does not know.
    out.push(
      allow(
        'ReadOrganization',
        ['organizations:ListAccounts', 'organizations:ListAccountsForParent', 'organizations:ListChildren'],
        '*',
      ),
    );
  }
  if (p.tracingMode === 'Active') {
    out.push(allow('XRayTraces', ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], '*'));
  }
  return out;
}

function secretsAndKeys(p: ResolvedHubProps, configKey: Statement[], withRepositoryKeys: boolean): Statement[] {
  const out: Statement[] = [];
  if (p.credentialSecretArns.length > 0) {
    out.push(allow('ReadRegistryCredentials', 'secretsmanager:GetSecretValue', p.credentialSecretArns));
  }
  out.push(...configKey);
  if (p.kmsKeyArns.length > 0) {
    out.push(
      allow('DecryptSecrets', 'kms:Decrypt', p.kmsKeyArns, {
        StringEquals: { 'kms:ViaService': Fn.sub('secretsmanager.${AWS::Region}.amazonaws.com') },
      }),
    );
    if (withRepositoryKeys) {
      out.push(
        allow('CreateKmsEncryptedRepositories', ['kms:DescribeKey', 'kms:CreateGrant'], p.kmsKeyArns, {
          StringLike: { 'kms:ViaService': 'ecr.*.amazonaws.com' },
        }),
      );
    }
  }
  return out;
}

/** The statements of one function's role policy, in the template's order. */
export function roleStatements(fn: HubFunction, p: ResolvedHubProps, refs: HubRefs): Statement[] {
  const { head, configKey } = common(p, refs);
  const login = allow('EcrRegistryLogin', 'ecr:GetAuthorizationToken', '*');
  const hasDestinations = p.destinationRepositoryArns.length > 0;
  switch (fn) {
    case 'dispatch':
      return [
        ...head,
        allow('SendJobs', 'sqs:SendMessage', refs.jobsQueueArn),
        allow('AsyncDeadLetters', 'sqs:SendMessage', refs.eventsDlqArn),
        // The source registry's pull-through cache rules (registry-level, read-only).
        allow('ReadPullThroughCacheRules', 'ecr:DescribePullThroughCacheRules', '*'),
        // Promotion gates: a gated copy is judged before its job is sent (the image's
        // manifest, ECR's scan findings, the push time, signatures), and a copy a gate
        // stops becomes a HELD or BLOCKED result event.
        login,
        allow('JudgeGates', ECR_JUDGE_GATES, p.sourceRepositoryArns),
        allow('PublishGateResults', 'events:PutEvents', refs.resultBusArn),
        ...configKey,
        ...tail(p),
      ];
    case 'replicate':
      return [
        ...head,
        allow(
          'ConsumeJobs',
          ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'],
          refs.jobsQueueArn,
        ),
        // The destinations of a job for several that must be tried again go back to the
        // queue as a job of their own.
        allow('RequeueDestinations', 'sqs:SendMessage', refs.jobsQueueArn),
        allow('PublishResults', 'events:PutEvents', refs.resultBusArn),
        // The failure ledger: read an image's entry, record a permanent failure, delete
        // the entry after a success.
        allow('RecordFailures', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'], refs.ledgerTableArn),
        login,
        // Whether the hub account's registries accept blob mounts (BLOB_MOUNTING).
        allow('ReadAccountSettings', 'ecr:GetAccountSetting', '*'),
        // The managed signing configuration of a destination written with this role
        // (registry-level, read-only, no resource type).
        allow('ReadSigningConfiguration', 'ecr:GetSigningConfiguration', '*'),
        allow('ReadPullThroughCacheRules', 'ecr:DescribePullThroughCacheRules', '*'),
        allow('PullFromSources', ECR_PULL, p.sourceRepositoryArns),
        ...(hasDestinations ? [allow('PushToDestinations', ECR_PUSH, p.destinationRepositoryArns)] : []),
        ...(p.destinationRoleArns.length > 0
          ? [allow('AssumeDestinationRoles', 'sts:AssumeRole', p.destinationRoleArns)]
          : []),
        ...secretsAndKeys(p, configKey, true),
        ...tail(p),
      ];
    case 'reconcile':
      // Reconcile reads untrusted listings: it may assume the destinations' read roles
      // (destinationReadRoleArns, the configuration's readRoleArn), never a write role;
      // without them it reads destinations with this role (ListDestinations, their
      // registry policy's FerryReconcileRead).
      return [
        ...head,
        allow('SendJobs', 'sqs:SendMessage', refs.jobsQueueArn),
        // The jobs still queued: a run enqueues no more than its cap minus them.
        allow('ReadJobsBacklog', 'sqs:GetQueueAttributes', refs.jobsQueueArn),
        allow('AsyncDeadLetters', 'sqs:SendMessage', refs.eventsDlqArn),
        // The failure ledger: every entry once a run (Scan), and the cursor item where the
        // last capped run stopped.
        allow('ReadFailuresKeepCursor', ['dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:PutItem'], refs.ledgerTableArn),
        login,
        // The source's pull-through cache rules and the managed signing configuration
        // (registry-level, read-only, no resource type).
        allow('ReadRegistrySettings', ['ecr:DescribePullThroughCacheRules', 'ecr:GetSigningConfiguration'], '*'),
        allow('ListSources', ECR_LIST_SOURCES, p.sourceRepositoryArns),
        ...(hasDestinations ? [allow('ListDestinations', ECR_LIST, p.destinationRepositoryArns)] : []),
        ...(p.destinationReadRoleArns.length > 0
          ? [allow('AssumeDestinationReadRoles', 'sts:AssumeRole', p.destinationReadRoleArns)]
          : []),
        ...secretsAndKeys(p, configKey, false),
        ...tail(p),
      ];
  }
}

/** The role of one function (an L1 role whose inline policy is exactly the template's). */
export function hubRole(scope: Construct, id: string, fn: HubFunction, p: ResolvedHubProps, refs: HubRefs): iam.CfnRole {
  const role = new iam.CfnRole(scope, id, {
    description: DESCRIPTIONS[fn],
    assumeRolePolicyDocument: {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    },
    permissionsBoundary: p.permissionsBoundaryArn,
    managedPolicyArns:
      p.subnetIds.length > 0
        ? [`arn:${Aws.PARTITION}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole`]
        : undefined,
    policies: [
      { policyName: fn, policyDocument: { Version: '2012-10-17', Statement: roleStatements(fn, p, refs) } },
    ],
  });
  // cfn-lint's IAM action list lacks ecr:ListImageReferrers (docs/deploy.md, section 10).
  role.addMetadata('cfn-lint', { config: { ignore_checks: ['W3037'] } });
  return role;
}
