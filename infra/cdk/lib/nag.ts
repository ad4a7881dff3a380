/**
 * cdk-nag AwsSolutionsChecks for Ferry's stacks, and the findings Ferry suppresses, each
 * with its written reason. Where checkov reports the same thing for the SAM templates the
 * reason is the one of infra/.checkov.yaml or of the template's checkov waiver.
 */
import { Aspects, CfnResource, Stack } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NagPackSuppression, NagSuppressions } from 'cdk-nag';
import { IConstruct } from 'constructs';

/**
 * Checks every stack below `scope` with AwsSolutionsChecks (errors fail `cdk synth`);
 * `logIgnores` also reports each suppressed finding (as an info annotation).
 */
export function checkWithNag(scope: IConstruct, logIgnores = false): void {
  Aspects.of(scope).add(new AwsSolutionsChecks({ verbose: true, logIgnores }));
}

const SECURE_TRANSPORT =
  'Every sender and receiver is an AWS service principal (EventBridge, the Lambda event source mapping, SQS redrive) or a Ferry function, whose AWS SDK uses HTTPS endpoints only. The SAM templates have the same queue policies (parity), so a SecureTransport deny would be added to both.';

/** The suppressions of one kind of Ferry resource: construct id, type, findings and reasons. */
interface Rule {
  readonly ids: readonly string[];
  readonly type: string;
  readonly suppressions: readonly NagPackSuppression[];
}

const RULES: readonly Rule[] = [
  {
    ids: ['JobsQueue', 'JobsDeadLetterQueue', 'EventsDeadLetterQueue', 'DeadLetterQueue'],
    type: 'AWS::SQS::Queue',
    suppressions: [{ id: 'AwsSolutions-SQS4', reason: SECURE_TRANSPORT }],
  },
  {
    ids: ['DeadLetterQueue'],
    type: 'AWS::SQS::Queue',
    suppressions: [
      {
        id: 'AwsSolutions-SQS3',
        reason:
          "This queue is the dead-letter queue of the forward rule's target (EventBridge DeadLetterConfig), which cdk-nag does not recognize as a DLQ; a DLQ of a DLQ would only move the same events again.",
      },
    ],
  },
  {
    ids: ['DispatchRole', 'ReplicateRole', 'ReconcileRole', 'AssumeRole', 'ReadRole'],
    type: 'AWS::IAM::Role',
    suppressions: [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Resource "*" only for actions that have no resource type: ecr:GetAuthorizationToken, ecr:GetAccountSetting (BLOB_MOUNTING, read-only), the registry-level reads ecr:GetSigningConfiguration and ecr:DescribePullThroughCacheRules, xray:PutTraceSegments/PutTelemetryRecords (tracingMode Active), organizations:ListAccounts (and ListAccountsForParent/ListChildren, whose unit ARNs name a management account and organization ID the stack does not know; read-only, organizationAccess direct only).',
        appliesTo: ['Resource::*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Repository ARN patterns given by the operator (sourceRepositoryArns, destinationRepositoryArns) or the destination's repository prefix: Ferry creates repositories on push under a prefix, so it cannot name them in advance; the wildcard is in the repository name only.",
        appliesTo: [{ regex: '/^Resource::arn:(aws[a-z-]*|<AWS::Partition>):ecr:.*:repository\\/.*\\*.*$/g' }],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Destination role and secret patterns given by the operator (destinationRoleArns, destinationReadRoleArns, credentialSecretArns), e.g. arn:aws:iam::*:role/ferry-destination-* (replicate) and arn:aws:iam::*:role/ferry-destination-read-* (reconcile) for a StackSet role in every account; the template grants exactly these.',
        appliesTo: [{ regex: '/^Resource::arn:(aws[a-z-]*|<AWS::Partition>):(iam|secretsmanager):.*\\*.*$/g' }],
      },
      {
        id: 'AwsSolutions-IAM4',
        reason:
          'AWSLambdaVPCAccessExecutionRole (only with subnetIds) is the AWS managed policy for Lambda network interfaces: ec2:CreateNetworkInterface and friends, which have no narrower resource before the interface exists.',
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole'],
      },
    ],
  },
  {
    ids: ['AlarmTopic'],
    type: 'AWS::SNS::Topic',
    suppressions: [
      {
        id: 'AwsSolutions-SNS3',
        reason:
          'Only CloudWatch alarms publish to the topic (the service principal, over HTTPS) and it carries alarm state changes, no image data; it cannot use SSE with the AWS managed key, whose key policy does not admit cloudwatch.amazonaws.com (the checkov CKV_AWS_26 waiver of infra/template.yaml). Same topic as the template (parity).',
      },
    ],
  },
];

/** The suppressions of one resource (by its construct id and type). */
export function suppressionsFor(resource: CfnResource): NagPackSuppression[] {
  return RULES.filter((r) => r.type === resource.cfnResourceType && r.ids.includes(resource.node.id)).flatMap((r) => [
    ...r.suppressions,
  ]);
}

/** Adds Ferry's suppressions to every Ferry resource below `stack`. */
export function suppressFerryFindings(stack: Stack): void {
  for (const node of stack.node.findAll()) {
    if (node instanceof CfnResource) {
      const suppressions = suppressionsFor(node);
      if (suppressions.length > 0) {
        NagSuppressions.addResourceSuppressions(node, suppressions);
      }
    }
  }
}

/** Every suppression Ferry can add, for the documentation and the tests. */
export function allSuppressions(): readonly Rule[] {
  return RULES;
}
