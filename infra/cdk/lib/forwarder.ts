/**
 * FerryForwarder: infra/forwarder.yaml, one per extra source region. Forwards this
 * region's successful ECR pushes and deletes to the default event bus of the hub region,
 * where the hub's rule hands them to dispatch.
 */
import { Aws, CfnOutput, CfnRule, Fn, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { matches, matchesIf, PATTERNS, require_ } from './check';
import { ECR_IMAGE_ACTION_PATTERN, SCAN_COMPLETED_PATTERN, eventsDeadLetterQueue, ruleDeadLetterPolicy } from './events';

/** Props of {@link FerryForwarder}. */
export interface FerryForwarderProps {
  /** Region of the hub (must differ from this stack's region). */
  readonly hubRegion: string;
  /**
   * Account of the hub. @default this account. Another account must first allow this
   * one to PutEvents on its default bus (docs/deploy.md).
   */
  readonly hubAccountId?: string;
  /** SNS topic in this region notified when forwarding fails. @default none */
  readonly alarmTopicArn?: string;
}

const NAME = 'FerryForwarder';

/** The forwarder; see the module documentation. */
export class FerryForwarder extends Construct {
  /** The rule forwarding ECR Image Action events. */
  readonly rule: events.CfnRule;
  /** The rule forwarding scan completions (ECR Image Scan, Inspector2 Scan). */
  readonly scanRule: events.CfnRule;
  /** Dead-letter queue of events that could not be forwarded. */
  readonly deadLetterQueue: sqs.CfnQueue;

  constructor(scope: Construct, id: string, props: FerryForwarderProps) {
    super(scope, id);
    const hubAccountId = props.hubAccountId || undefined;
    const alarmTopicArn = props.alarmTopicArn || undefined;
    matches(NAME, 'hubRegion', [props.hubRegion], PATTERNS.region);
    matchesIf(NAME, 'hubAccountId', hubAccountId, PATTERNS.accountId);
    matchesIf(NAME, 'alarmTopicArn', alarmTopicArn, PATTERNS.snsTopicArn);
    const region = Stack.of(this).region;
    if (Token.isUnresolved(region)) {
      // Environment-agnostic stack: CloudFormation checks it at deploy time.
      new CfnRule(this, 'NotTheHubRegion', {
        assertions: [
          {
            assert: Fn.conditionNot(Fn.conditionEquals(props.hubRegion, Aws.REGION)),
            assertDescription: 'Deploy the forwarder in an extra source region, not in the hub region.',
          },
        ],
      });
    } else {
      require_(NAME, region !== props.hubRegion, 'deploy the forwarder in an extra source region, not in the hub region');
    }

    const hubBus = Fn.sub(
      `arn:\${AWS::Partition}:events:${props.hubRegion}:${hubAccountId ?? '${AWS::AccountId}'}:event-bus/default`,
    );
    const role = new iam.CfnRole(this, 'ForwarderRole', {
      description: "Lets EventBridge put this region's ECR events on the hub region's default bus",
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sts:AssumeRole',
            Condition: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
          },
        ],
      },
      policies: [
        {
          policyName: 'forward-to-hub',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [{ Sid: 'PutOnHubDefaultBus', Effect: 'Allow', Action: 'events:PutEvents', Resource: hubBus }],
          },
        },
      ],
    });
    this.deadLetterQueue = eventsDeadLetterQueue(this, 'DeadLetterQueue');
    // Both rules send to the hub region's default bus, with retries and this DLQ.
    const toHub = {
      id: 'ferry-hub',
      arn: hubBus,
      roleArn: role.attrArn,
      retryPolicy: { maximumEventAgeInSeconds: 3600, maximumRetryAttempts: 10 },
      deadLetterConfig: { arn: this.deadLetterQueue.attrArn },
    };
    this.rule = new events.CfnRule(this, 'ForwardRule', {
      description: "Successful ECR pushes, deletes and storage-class changes, and signature pushes -> the Ferry hub region's default bus",
      eventBusName: 'default',
      state: 'ENABLED',
      eventPattern: ECR_IMAGE_ACTION_PATTERN,
      targets: [toHub],
    });
    // Scan completions release the copies a scan gate holds: forwarded as the hub accepts them.
    this.scanRule = new events.CfnRule(this, 'ForwardScanRule', {
      description:
        "ECR basic and enhanced (Inspector) scan completions -> the Ferry hub region's default bus (they release images a scan gate holds)",
      eventBusName: 'default',
      state: 'ENABLED',
      eventPattern: SCAN_COMPLETED_PATTERN,
      targets: [toHub],
    });
    ruleDeadLetterPolicy(this, 'DeadLetterQueuePolicy', this.deadLetterQueue, [
      this.rule.attrArn,
      this.scanRule.attrArn,
    ]);
    new cloudwatch.CfnAlarm(this, 'DeadLetterQueueAlarm', {
      alarmDescription:
        'ECR events of this region could not be forwarded to the Ferry hub (reconcile will catch up).',
      namespace: 'AWS/SQS',
      metricName: 'ApproximateNumberOfMessagesVisible',
      dimensions: [{ name: 'QueueName', value: this.deadLetterQueue.attrQueueName }],
      statistic: 'Maximum',
      period: 300,
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: 'GreaterThanThreshold',
      treatMissingData: 'notBreaching',
      alarmActions: alarmTopicArn === undefined ? undefined : [alarmTopicArn],
    });
    new CfnOutput(this, 'ForwardRuleArn', { value: this.rule.attrArn });
    new CfnOutput(this, 'ForwardScanRuleArn', { value: this.scanRule.attrArn });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.ref });
  }
}
