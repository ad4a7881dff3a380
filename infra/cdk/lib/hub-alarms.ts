/**
 * Alarms, the optional alarm topic and the dashboard of the hub, as in infra/template.yaml.
 */
import { Aws, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** What the alarms watch. */
export interface AlarmTargets {
  readonly jobsQueueName: string;
  readonly jobsDlqName: string;
  readonly eventsDlqName: string;
  readonly functionNames: { readonly dispatch: string; readonly replicate: string; readonly reconcile: string };
  readonly jobAgeAlarmSeconds: number;
  readonly replicationLagAlarmSeconds: number;
  readonly alarmEmail?: string;
}

/** checkov waiver of the alarm topic (the template's reason, word for word). */
export const ALARM_TOPIC_CHECKOV_SKIP = {
  id: 'CKV_AWS_26',
  comment:
    'CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key alias/aws/sns (its key policy does not admit cloudwatch.amazonaws.com); the topic only carries alarm state changes, no image data.',
};

interface AlarmSpec {
  readonly id: string;
  readonly description: string;
  readonly namespace: string;
  readonly metric: string;
  readonly dimension?: { readonly name: string; readonly value: string };
  readonly statistic?: string;
  readonly extendedStatistic?: string;
  readonly evaluationPeriods?: number;
  readonly threshold?: number;
}

function functionAlarms(fn: string, name: string, errors: string, throttles: string): AlarmSpec[] {
  const dimension = { name: 'FunctionName', value: name };
  const base = { namespace: 'AWS/Lambda', dimension, statistic: 'Sum' };
  return [
    { ...base, id: `${fn}ErrorsAlarm`, description: errors, metric: 'Errors' },
    { ...base, id: `${fn}ThrottlesAlarm`, description: throttles, metric: 'Throttles' },
  ];
}

/** The alarm topic (when alarmEmail is set) and the fourteen alarms; returns the topic. */
export function hubAlarms(scope: Construct, t: AlarmTargets): sns.CfnTopic | undefined {
  let topic: sns.CfnTopic | undefined;
  if (t.alarmEmail !== undefined) {
    topic = new sns.CfnTopic(scope, 'AlarmTopic', { displayName: 'Ferry alarms' });
    topic.addMetadata('checkov', { skip: [ALARM_TOPIC_CHECKOV_SKIP] });
    new sns.CfnSubscription(scope, 'AlarmEmailSubscription', {
      topicArn: topic.ref,
      protocol: 'email',
      endpoint: t.alarmEmail,
    });
  }
  const sqsMetric = { namespace: 'AWS/SQS', statistic: 'Maximum' };
  const specs: AlarmSpec[] = [
    {
      ...sqsMetric,
      id: 'JobsDeadLetterQueueAlarm',
      description: 'Ferry jobs failed 5 times and are in the jobs dead-letter queue (inspect, then redrive).',
      metric: 'ApproximateNumberOfMessagesVisible',
      dimension: { name: 'QueueName', value: t.jobsDlqName },
    },
    {
      ...sqsMetric,
      id: 'EventsDeadLetterQueueAlarm',
      description: 'ECR events or schedule ticks could not be delivered to dispatch/reconcile.',
      metric: 'ApproximateNumberOfMessagesVisible',
      dimension: { name: 'QueueName', value: t.eventsDlqName },
    },
    {
      ...sqsMetric,
      id: 'JobsAgeAlarm',
      description:
        'The oldest replication job has waited too long (replicate is failing, throttled or under-provisioned).',
      metric: 'ApproximateAgeOfOldestMessage',
      dimension: { name: 'QueueName', value: t.jobsQueueName },
      evaluationPeriods: 2,
      threshold: t.jobAgeAlarmSeconds,
    },
    ...functionAlarms(
      'Dispatch',
      t.functionNames.dispatch,
      'The dispatch function reported errors.',
      'The dispatch function was throttled by Lambda.',
    ),
    ...functionAlarms(
      'Replicate',
      t.functionNames.replicate,
      'The replicate function failed whole invocations (per-job failures go back to the queue).',
      'The replicate function was throttled by Lambda (account concurrency exhausted?).',
    ),
    ...functionAlarms(
      'Reconcile',
      t.functionNames.reconcile,
      'The reconcile function reported errors.',
      'The reconcile function was throttled by Lambda.',
    ),
    // A job the configuration does not allow, or an undecodable body: acknowledged without
    // retry, so no DLQ or error alarm sees it; this EMF metric does.
    {
      id: 'RejectedJobsAlarm',
      description:
        'replicate rejected jobs the configuration does not allow, or undecodable job bodies (acknowledged, not retried; see the REJECTED result events and the replicate log).',
      namespace: 'Ferry',
      metric: 'RejectedJobs',
      statistic: 'Sum',
    },
    // Permanent failures and immutable-tag conflicts: acknowledged, never retried, so no
    // DLQ or error alarm sees them.
    {
      id: 'FailedJobsAlarm',
      description:
        'replicate failed jobs permanently (see the FAILED result events and their errorCode; ferry failures lists them).',
      namespace: 'Ferry',
      metric: 'Jobs',
      dimension: { name: 'status', value: 'FAILED' },
      statistic: 'Sum',
    },
    {
      id: 'ConflictJobsAlarm',
      description:
        'A destination tag is immutable and holds another image (CONFLICT result events): the copy was left as it is.',
      namespace: 'Ferry',
      metric: 'Jobs',
      dimension: { name: 'status', value: 'CONFLICT' },
      statistic: 'Sum',
    },
    // A promotion gate blocked copies: the image stays at the source until it passes.
    {
      id: 'BlockedImagesAlarm',
      description:
        'A promotion gate blocked copies (BLOCKED result events, with the gate and its reason): the image is not replicated until a new scan or signature lets it pass.',
      namespace: 'Ferry',
      metric: 'GateResults',
      dimension: { name: 'status', value: 'BLOCKED' },
      statistic: 'Sum',
    },
    {
      id: 'ReplicationLagAlarm',
      description:
        'Replicas arrive later than ReplicationLagAlarmSeconds after their push (p99 over 5 minutes): replicate is slow, throttled or behind.',
      namespace: 'Ferry',
      metric: 'ReplicationLag',
      extendedStatistic: 'p99',
      threshold: t.replicationLagAlarmSeconds,
    },
    // An organization scope whose accounts could not be read: only its destinations wait,
    // so no function error alarm sees it; this EMF metric does.
    {
      id: 'OrganizationUnreadAlarm',
      description:
        'The accounts of an organization destination could not be read from AWS Organizations; its destinations receive nothing until they can (see the functions\' logs).',
      namespace: 'Ferry',
      metric: 'OrganizationUnread',
      statistic: 'Sum',
    },
  ];
  for (const s of specs) {
    new cloudwatch.CfnAlarm(scope, s.id, {
      alarmDescription: s.description,
      namespace: s.namespace,
      metricName: s.metric,
      dimensions: s.dimension && [s.dimension],
      statistic: s.statistic,
      extendedStatistic: s.extendedStatistic,
      period: 300,
      evaluationPeriods: s.evaluationPeriods ?? 1,
      threshold: s.threshold ?? 0,
      comparisonOperator: 'GreaterThanThreshold',
      treatMissingData: 'notBreaching',
      alarmActions: topic && [topic.ref],
    });
  }
  return topic;
}

type Row = unknown[];

function widget(x: number, y: number, title: string, metrics: Row[], extra: Record<string, unknown> = {}): unknown {
  return {
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: Aws.REGION, view: 'timeSeries', ...extra, period: 300, metrics },
  };
}

/** The dashboard: the EMF metrics of crates/ferry-pipeline/src/metrics.rs and the queues. */
export function hubDashboard(scope: Construct, t: AlarmTargets): cloudwatch.CfnDashboard {
  const statuses = ['SUCCEEDED', 'SKIPPED', 'FAILED', 'CONFLICT', 'RETRY', 'REJECTED'];
  const queue = (metric: string, name: string, more: Record<string, unknown>): Row => [
    'AWS/SQS',
    metric,
    'QueueName',
    name,
    more,
  ];
  const ferry = (metric: string, id: string, label: string, more: Record<string, unknown> = {}): Row => [
    'Ferry',
    metric,
    { id, stat: 'Sum', label, ...more },
  ];
  const widgets = [
    widget(
      0,
      0,
      'Jobs by status',
      statuses.map((s) => ['Ferry', 'Jobs', 'status', s, { id: s.toLowerCase(), stat: 'Sum', label: s }]),
      { stacked: true },
    ),
    widget(
      12,
      0,
      'Replication lag p50 / p99, push to replica (s)',
      ['p50', 'p99'].map((p) => ['Ferry', 'ReplicationLag', { id: p, stat: p, label: p }]),
    ),
    widget(
      0,
      6,
      'Dead-letter queue depth',
      [
        queue('ApproximateNumberOfMessagesVisible', t.jobsDlqName, { label: 'jobs DLQ' }),
        queue('ApproximateNumberOfMessagesVisible', t.eventsDlqName, { label: 'events DLQ' }),
      ],
      { stat: 'Maximum' },
    ),
    widget(
      12,
      6,
      'Jobs queue: depth and age of oldest job',
      [
        queue('ApproximateNumberOfMessagesVisible', t.jobsQueueName, { label: 'visible jobs' }),
        queue('ApproximateAgeOfOldestMessage', t.jobsQueueName, { label: 'oldest job (s)', yAxis: 'right' }),
      ],
      { stat: 'Maximum' },
    ),
    widget(0, 12, 'Blobs and bytes', [
      ferry('BlobsCopied', 'copied', 'blobs copied'),
      ferry('BlobsSkipped', 'skipped', 'blobs skipped (present)'),
      ferry('BlobsMounted', 'mounted', 'blobs mounted'),
      ferry('BytesCopied', 'bytes', 'bytes copied', { yAxis: 'right' }),
    ]),
    widget(12, 12, 'Throttles, drift, malformed events, rejected jobs, invalid names', [
      ferry('Throttles', 'throttles', 'ECR throttles'),
      ferry('Drift', 'drift', 'drift found by reconcile'),
      ferry('MalformedEvents', 'malformed', 'malformed events'),
      ferry('RejectedJobs', 'rejected', 'rejected jobs (not allowed by the config, undecodable)'),
      ferry('InvalidNames', 'invalidnames', 'invalid names skipped (tags over 128 characters)'),
    ]),
  ];
  return new cloudwatch.CfnDashboard(scope, 'Dashboard', {
    dashboardName: `${Aws.STACK_NAME}-${Aws.REGION}`,
    dashboardBody: Stack.of(scope).toJsonString({ widgets }),
  });
}
