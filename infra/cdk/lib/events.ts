/** Pieces the hub and the forwarder share: the ECR event pattern, the events DLQ and its policy. */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Successful ECR pushes and deletes (ECR Image Action, and ECR Referrer Action for signatures), the pattern of both rules. */
export const ECR_IMAGE_ACTION_PATTERN = {
  source: ['aws.ecr'],
  'detail-type': ['ECR Image Action', 'ECR Referrer Action'],
  detail: { result: ['SUCCESS'], 'action-type': ['PUSH', 'DELETE', 'UPDATE_STORAGE_CLASS'] },
};

/**
 * Scan completions: ECR's basic scanning (ECR Image Scan) and Amazon Inspector's enhanced
 * scanning (Inspector2 Scan). They release the copies a scan gate holds.
 */
export const SCAN_COMPLETED_PATTERN = {
  source: ['aws.ecr', 'aws.inspector2'],
  'detail-type': ['ECR Image Scan', 'Inspector2 Scan'],
};

/** A standard queue (SSE-SQS, 14 days) for events an EventBridge rule could not deliver. */
export function eventsDeadLetterQueue(scope: Construct, id: string): sqs.CfnQueue {
  const queue = new sqs.CfnQueue(scope, id, { sqsManagedSseEnabled: true, messageRetentionPeriod: 1209600 });
  queue.applyRemovalPolicy(RemovalPolicy.DESTROY);
  return queue;
}

/** Lets EventBridge put dead letters of the rules `sourceArn` names on `queue`. */
export function ruleDeadLetterPolicy(scope: Construct, id: string, queue: sqs.CfnQueue, sourceArn: string | string[]): void {
  new sqs.CfnQueuePolicy(scope, id, {
    queues: [queue.ref],
    policyDocument: {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'EventBridgeRuleDeadLetters',
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: queue.attrArn,
          Condition: { ArnEquals: { 'aws:SourceArn': sourceArn } },
        },
      ],
    },
  });
}
