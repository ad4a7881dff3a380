/**
 * FerryHub: everything infra/template.yaml deploys (the SSM configuration, the FIFO jobs
 * queue and its DLQ, the events DLQ, the result bus, the log groups, the three
 * least-privilege roles and functions, the EventBridge rules, the alarms and the
 * dashboard). The template's parameters are props and its conditions are decided at synth
 * time; resource for resource the output equals the SAM transform of the template (the
 * parity test, test/parity.test.ts, compares them).
 */
import { Aws, CfnOutput, Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { binaryCode, FerryBinary } from './code';
import { ECR_IMAGE_ACTION_PATTERN, SCAN_COMPLETED_PATTERN, eventsDeadLetterQueue, ruleDeadLetterPolicy } from './events';
import { hubAlarms, hubDashboard } from './hub-alarms';
import { hubRole, HubFunction } from './hub-iam';
import { FerryHubProps, ResolvedHubProps, resolveHubProps } from './hub-props';

/** checkov waiver of replicate (the template's reason, word for word). */
export const REPLICATE_CHECKOV_SKIP = {
  id: 'CKV_AWS_116',
  comment:
    'Invoked synchronously by the SQS event source mapping; a Lambda DLQ only applies to asynchronous invocations. Failed jobs go to the FIFO jobs DLQ through the queue\'s redrive policy (maxReceiveCount 5).',
};

/** checkov waivers of the failure ledger table (the template's reasons, word for word). */
export const LEDGER_CHECKOV_SKIP = [
  {
    id: 'CKV_AWS_28',
    comment:
      'Point-in-time recovery: the ledger only paces reconcile\'s retries; losing it means failing images are tried again at once, nothing else.',
  },
  {
    id: 'CKV_AWS_119',
    comment:
      'Encrypted at rest with the AWS owned key (DynamoDB\'s default); the items hold image names, digests and error codes, no secrets.',
  },
];

interface FunctionSpec {
  readonly fn: HubFunction;
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: number;
  readonly env: Record<string, string | undefined>;
  readonly asyncInvoke?: { readonly maxAge: number; readonly retries: number };
}

/** The Ferry hub; see the module documentation. */
export class FerryHub extends Construct {
  /** The props after defaults and checks. */
  readonly settings: ResolvedHubProps;
  /** The SQS FIFO jobs queue. */
  readonly jobsQueue: sqs.CfnQueue;
  /** The FIFO dead-letter queue of jobs that failed 5 times. */
  readonly jobsDeadLetterQueue: sqs.CfnQueue;
  /** Dead-letter queue of undeliverable ECR events and schedule ticks. */
  readonly eventsDeadLetterQueue: sqs.CfnQueue;
  /** The result event bus (source ferry, detail-type "Ferry Image Replication"). */
  readonly resultEventBus: events.CfnEventBus;
  /** The failure ledger (and reconcile's cursor). */
  readonly ledgerTable: dynamodb.CfnTable;
  /** The function roles, by function. */
  readonly roles: Record<HubFunction, iam.CfnRole>;
  /** The functions. */
  readonly functions: Record<HubFunction, lambda.CfnFunction>;
  /** Name of the SSM parameter holding the configuration. */
  readonly configParameterName: string;

  constructor(scope: Construct, id: string, props: FerryHubProps) {
    super(scope, id);
    const p = resolveHubProps(props);
    this.settings = p;

    // ------------------------------------------------------------ configuration
    let configParameterName = p.existingConfigParameterName;
    if (p.configJson !== undefined) {
      const parameter = new ssm.CfnParameter(this, 'ConfigParameter', {
        name: Fn.sub('/ferry/${AWS::StackName}/config'),
        description: 'Ferry replication configuration (JSON), read by dispatch, replicate and reconcile.',
        type: 'String',
        tier: p.configParameterTier,
        value: p.configJson,
      });
      configParameterName = parameter.ref;
    }
    this.configParameterName = configParameterName as string;

    // ------------------------------------------------------------ queues
    this.jobsDeadLetterQueue = this.queue('JobsDeadLetterQueue', {
      fifoQueue: true,
      contentBasedDeduplication: false,
      sqsManagedSseEnabled: true,
      messageRetentionPeriod: 1209600,
    });
    this.jobsQueue = this.queue('JobsQueue', {
      fifoQueue: true,
      // dispatch and reconcile supply MessageDeduplicationId themselves.
      contentBasedDeduplication: false,
      // High-throughput FIFO: ordering and deduplication per message group.
      deduplicationScope: 'messageGroup',
      fifoThroughputLimit: 'perMessageGroupId',
      sqsManagedSseEnabled: true,
      messageRetentionPeriod: 345600,
      // 6 x the replicate timeout (AWS guidance for SQS event sources).
      visibilityTimeout: 6 * p.replicateTimeout,
      redrivePolicy: { deadLetterTargetArn: this.jobsDeadLetterQueue.attrArn, maxReceiveCount: 5 },
    });
    this.eventsDeadLetterQueue = eventsDeadLetterQueue(this, 'EventsDeadLetterQueue');

    this.resultEventBus = new events.CfnEventBus(this, 'ResultEventBus', {
      name: `${Aws.STACK_NAME}-results`,
      description: 'Ferry replication results (source ferry, detail-type "Ferry Image Replication").',
    });

    // ------------------------------------------------------------ failure ledger
    // One item per image that failed permanently at a destination, and reconcile's
    // cursor; entries expire through the TTL attribute expiresAt; encrypted at rest with
    // the AWS owned key (DynamoDB's default).
    this.ledgerTable = new dynamodb.CfnTable(this, 'LedgerTable', {
      billingMode: 'PAY_PER_REQUEST',
      attributeDefinitions: [
        { attributeName: 'pk', attributeType: 'S' },
        { attributeName: 'sk', attributeType: 'S' },
      ],
      keySchema: [
        { attributeName: 'pk', keyType: 'HASH' },
        { attributeName: 'sk', keyType: 'RANGE' },
      ],
      timeToLiveSpecification: { attributeName: 'expiresAt', enabled: true },
    });
    this.ledgerTable.applyRemovalPolicy(RemovalPolicy.DESTROY);
    this.ledgerTable.addMetadata('checkov', { skip: LEDGER_CHECKOV_SKIP });

    // ------------------------------------------------------------ logs and roles
    const logGroups = {} as Record<HubFunction, logs.CfnLogGroup>;
    const roles = {} as Record<HubFunction, iam.CfnRole>;
    for (const fn of ['dispatch', 'replicate', 'reconcile'] as const) {
      const name = capitalized(fn);
      const group = new logs.CfnLogGroup(this, `${name}LogGroup`, {
        logGroupName: Fn.sub(`/ferry/\${AWS::StackName}/${fn}`),
        retentionInDays: p.logRetentionDays,
      });
      group.applyRemovalPolicy(RemovalPolicy.DESTROY);
      logGroups[fn] = group;
      roles[fn] = hubRole(this, `${name}Role`, fn, p, {
        logGroupArn: group.attrArn,
        jobsQueueArn: this.jobsQueue.attrArn,
        eventsDlqArn: this.eventsDeadLetterQueue.attrArn,
        resultBusArn: this.resultEventBus.attrArn,
        ledgerTableArn: this.ledgerTable.attrArn,
      });
    }
    this.roles = roles;
    this.jobsQueuePolicy(p);

    // ------------------------------------------------------------ functions
    const organizationTtl = p.organizationAccess === 'none' ? undefined : String(p.organizationCacheSeconds);
    const specs: FunctionSpec[] = [
      {
        fn: 'dispatch',
        description: 'Ferry dispatch - turns ECR Image Action events into replication jobs',
        memorySize: 256,
        timeout: 60,
        env: {
          FERRY_EVENT_BUS_NAME: this.resultEventBus.ref,
          FERRY_JOBS_QUEUE_URL: this.jobsQueue.ref,
          FERRY_DESTINATIONS_PER_JOB: String(p.destinationsPerJob),
        },
        asyncInvoke: { maxAge: 3600, retries: 2 },
      },
      {
        fn: 'replicate',
        description: 'Ferry replicate - copies images for the jobs of one SQS batch',
        memorySize: p.replicateMemorySize,
        timeout: p.replicateTimeout,
        env: {
          FERRY_EVENT_BUS_NAME: this.resultEventBus.ref,
          FERRY_JOB_CONCURRENCY: String(p.replicateJobConcurrency),
          FERRY_JOBS_QUEUE_URL: this.jobsQueue.ref,
          FERRY_LEDGER_TABLE: this.ledgerTable.ref,
        },
      },
      {
        fn: 'reconcile',
        description: 'Ferry reconcile - compares sources and destinations and enqueues the drift',
        memorySize: 512,
        timeout: 900,
        env: {
          FERRY_JOBS_QUEUE_URL: this.jobsQueue.ref,
          FERRY_DESTINATIONS_PER_JOB: String(p.destinationsPerJob),
          FERRY_LEDGER_TABLE: this.ledgerTable.ref,
          FERRY_MAX_JOBS_PER_RUN: String(p.reconcileMaxJobsPerRun),
        },
        asyncInvoke: { maxAge: 900, retries: 0 },
      },
    ];
    const functions = {} as Record<HubFunction, lambda.CfnFunction>;
    for (const spec of specs) {
      functions[spec.fn] = this.function(spec, p, roles[spec.fn], logGroups[spec.fn], {
        FERRY_CONFIG_PARAMETER: this.configParameterName,
        ...spec.env,
        FERRY_ORGANIZATION_TTL_SECONDS: organizationTtl,
        RUST_LOG: p.logLevel,
      });
    }
    this.functions = functions;
    functions.replicate.addMetadata('checkov', { skip: [REPLICATE_CHECKOV_SKIP] });
    new lambda.CfnEventSourceMapping(this, 'ReplicateFunctionJobs', {
      eventSourceArn: this.jobsQueue.attrArn,
      functionName: functions.replicate.ref,
      batchSize: p.replicateBatchSize,
      enabled: true,
      functionResponseTypes: ['ReportBatchItemFailures'],
      scalingConfig: { maximumConcurrency: p.replicateMaximumConcurrency },
    });

    // ------------------------------------------------------------ triggers
    const ecrRule = new events.CfnRule(this, 'EcrImageActionRule', {
      description:
        'Successful ECR pushes, deletes and storage-class changes, and signature pushes (this region, and those forwarded by infra/forwarder.yaml) -> dispatch',
      eventBusName: 'default',
      state: 'ENABLED',
      eventPattern: ECR_IMAGE_ACTION_PATTERN,
      targets: [this.ruleTarget('dispatch', functions.dispatch, 3600, 10)],
    });
    this.permission('EcrImageActionPermission', functions.dispatch, ecrRule);
    // Scan completions release the copies a scan gate holds.
    const scanRule = new events.CfnRule(this, 'ScanCompletedRule', {
      description:
        'ECR basic and enhanced (Inspector) scan completions (this region, and those forwarded by infra/forwarder.yaml) -> dispatch, to release images a scan gate holds',
      eventBusName: 'default',
      state: 'ENABLED',
      eventPattern: SCAN_COMPLETED_PATTERN,
      targets: [this.ruleTarget('dispatch', functions.dispatch, 3600, 10)],
    });
    this.permission('ScanCompletedPermission', functions.dispatch, scanRule);
    const scheduleRule = new events.CfnRule(this, 'ReconcileScheduleRule', {
      description: 'Periodic reconcile (ECR events are best effort)',
      scheduleExpression: p.reconcileSchedule,
      state: 'ENABLED',
      targets: [this.ruleTarget('reconcile', functions.reconcile, 900, 2)],
    });
    this.permission('ReconcileSchedulePermission', functions.reconcile, scheduleRule);
    ruleDeadLetterPolicy(this, 'EventsDeadLetterQueuePolicy', this.eventsDeadLetterQueue, [
      ecrRule.attrArn,
      scanRule.attrArn,
      scheduleRule.attrArn,
    ]);

    // ------------------------------------------------------------ alarms, dashboard, outputs
    const targets = {
      jobsQueueName: this.jobsQueue.attrQueueName,
      jobsDlqName: this.jobsDeadLetterQueue.attrQueueName,
      eventsDlqName: this.eventsDeadLetterQueue.attrQueueName,
      functionNames: {
        dispatch: functions.dispatch.ref,
        replicate: functions.replicate.ref,
        reconcile: functions.reconcile.ref,
      },
      jobAgeAlarmSeconds: p.jobAgeAlarmSeconds,
      replicationLagAlarmSeconds: p.replicationLagAlarmSeconds,
      alarmEmail: p.alarmEmail,
    };
    const topic = hubAlarms(this, targets);
    const dashboard = hubDashboard(this, targets);
    this.outputs(dashboard.ref, topic?.ref);
  }

  private queue(id: string, props: sqs.CfnQueueProps): sqs.CfnQueue {
    const queue = new sqs.CfnQueue(this, id, props);
    queue.applyRemovalPolicy(RemovalPolicy.DESTROY);
    return queue;
  }

  /**
   * Only dispatch and reconcile (and jobsQueueSenderArns) may send jobs: an explicit Deny
   * of sqs:SendMessage for every other principal. It denies nothing else (no lock-out).
   */
  private jobsQueuePolicy(p: ResolvedHubProps): void {
    const condition: Record<string, unknown> = {
      ArnNotEquals: {
        'aws:PrincipalArn': [this.roles.dispatch.attrArn, this.roles.reconcile.attrArn, this.roles.replicate.attrArn],
      },
    };
    if (p.jobsQueueSenderArns.length > 0) {
      condition.ArnNotLike = { 'aws:PrincipalArn': p.jobsQueueSenderArns };
    }
    new sqs.CfnQueuePolicy(this, 'JobsQueuePolicy', {
      queues: [this.jobsQueue.ref],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'OnlyFerrySendsJobs',
            Effect: 'Deny',
            Principal: '*',
            Action: 'sqs:SendMessage',
            Resource: this.jobsQueue.attrArn,
            Condition: condition,
          },
        ],
      },
    });
  }

  private function(
    spec: FunctionSpec,
    p: ResolvedHubProps,
    role: iam.CfnRole,
    logGroup: logs.CfnLogGroup,
    env: Record<string, string | undefined>,
  ): lambda.CfnFunction {
    const name = capitalized(spec.fn);
    const variables: Record<string, string> = {};
    for (const [key, value] of Object.entries(env)) {
      if (value !== undefined) {
        variables[key] = value;
      }
    }
    const cfn = new lambda.CfnFunction(this, `${name}Function`, {
      description: spec.description,
      code: { zipFile: 'placeholder' },
      handler: 'bootstrap',
      runtime: 'provided.al2023',
      architectures: [p.architecture],
      memorySize: spec.memorySize,
      timeout: spec.timeout,
      role: role.attrArn,
      tracingConfig: { mode: p.tracingMode },
      loggingConfig: {
        logFormat: 'JSON',
        applicationLogLevel: p.logLevel.toUpperCase(),
        systemLogLevel: 'INFO',
        logGroup: logGroup.ref,
      },
      environment: { variables },
      vpcConfig: p.subnetIds.length > 0 ? { subnetIds: p.subnetIds, securityGroupIds: p.securityGroupIds } : undefined,
      deadLetterConfig: spec.asyncInvoke && { targetArn: this.eventsDeadLetterQueue.attrArn },
    });
    const asset = binaryCode(p.code, spec.fn as FerryBinary, p.architecture);
    const code = asset.bind(cfn);
    cfn.code = { s3Bucket: code.s3Location?.bucketName, s3Key: code.s3Location?.objectKey };
    asset.bindToResource(cfn);
    if (spec.asyncInvoke !== undefined) {
      new lambda.CfnEventInvokeConfig(this, `${name}FunctionEventInvokeConfig`, {
        functionName: cfn.ref,
        qualifier: '$LATEST',
        maximumEventAgeInSeconds: spec.asyncInvoke.maxAge,
        maximumRetryAttempts: spec.asyncInvoke.retries,
      });
    }
    return cfn;
  }

  private ruleTarget(
    id: string,
    fn: lambda.CfnFunction,
    maxAge: number,
    retries: number,
  ): events.CfnRule.TargetProperty {
    return {
      id,
      arn: fn.attrArn,
      retryPolicy: { maximumEventAgeInSeconds: maxAge, maximumRetryAttempts: retries },
      deadLetterConfig: { arn: this.eventsDeadLetterQueue.attrArn },
    };
  }

  private permission(id: string, fn: lambda.CfnFunction, rule: events.CfnRule): void {
    new lambda.CfnPermission(this, id, {
      action: 'lambda:InvokeFunction',
      functionName: fn.attrArn,
      principal: 'events.amazonaws.com',
      sourceArn: rule.attrArn,
    });
  }

  private outputs(dashboardName: string, alarmTopicArn: string | undefined): void {
    const out = (id: string, value: string, description?: string) =>
      new CfnOutput(this, id, { value, description });
    out(
      'ResultEventBusName',
      this.resultEventBus.ref,
      'EventBridge bus receiving Ferry result events (source ferry, detail-type "Ferry Image Replication")',
    );
    out('ResultEventBusArn', this.resultEventBus.attrArn, 'ARN of the Ferry result event bus');
    out('LedgerTableName', this.ledgerTable.ref, 'DynamoDB table of the failure ledger (ferry failures --ledger-table)');
    out('JobsQueueUrl', this.jobsQueue.ref, 'SQS FIFO jobs queue');
    out('JobsDeadLetterQueueUrl', this.jobsDeadLetterQueue.ref, 'FIFO dead-letter queue of jobs that failed 5 times');
    out(
      'EventsDeadLetterQueueUrl',
      this.eventsDeadLetterQueue.ref,
      'Dead-letter queue of undeliverable ECR events and schedule ticks',
    );
    out('ConfigParameterName', this.configParameterName, 'SSM parameter holding the replication configuration');
    out('DispatchRoleArn', this.roles.dispatch.attrArn, 'Role of the dispatch function');
    out(
      'FunctionRoleArns',
      Fn.join(',', [this.roles.dispatch.attrArn, this.roles.replicate.attrArn, this.roles.reconcile.attrArn]),
      'The dispatch, replicate and reconcile roles, comma-separated: HubRoleArns of infra/organization-reader.yaml',
    );
    out(
      'ReplicateRoleArn',
      this.roles.replicate.attrArn,
      'Role that pushes to destinations (HubReplicateRoleArn of infra/destination.yaml)',
    );
    out(
      'ReconcileRoleArn',
      this.roles.reconcile.attrArn,
      'Role that lists sources and destinations (HubReconcileRoleArn of infra/destination.yaml)',
    );
    out('DispatchFunctionName', this.functions.dispatch.ref);
    out('ReplicateFunctionName', this.functions.replicate.ref);
    out('ReconcileFunctionName', this.functions.reconcile.ref);
    out('DashboardName', dashboardName);
    if (alarmTopicArn !== undefined) {
      out('AlarmTopicArn', alarmTopicArn);
    }
  }
}

function capitalized(fn: string): string {
  return fn.charAt(0).toUpperCase() + fn.slice(1);
}
