/**
 * The parameters of the SAM templates and the construct props they correspond to: the
 * parity test turns a parameter set (infra/lint-variants.yaml and the sets below) into
 * props with these tables, and fails on a parameter no table knows.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { FerryDestinationProps } from '../lib/destination';
import { FerryForwarderProps } from '../lib/forwarder';
import { FerryHubProps } from '../lib/hub-props';
import { ParameterValues, readTemplate } from './cfn';
import { REPO } from './fixture';

type Kind = 'string' | 'number' | 'list' | 'boolean' | 'json';

/** SAM parameter -> [prop, how its value converts]. */
export type ParameterMap<P> = Record<string, [keyof P, Kind]>;

export const HUB_PARAMETERS: ParameterMap<FerryHubProps> = {
  ReplicationConfig: ['config', 'json'],
  ExistingConfigParameterName: ['existingConfigParameterName', 'string'],
  ConfigKmsKeyArn: ['configKmsKeyArn', 'string'],
  ConfigParameterTier: ['configParameterTier', 'string'],
  Architecture: ['architecture', 'string'],
  LogLevel: ['logLevel', 'string'],
  LogRetentionDays: ['logRetentionDays', 'number'],
  TracingMode: ['tracingMode', 'string'],
  ReplicateMemorySize: ['replicateMemorySize', 'number'],
  ReplicateTimeout: ['replicateTimeout', 'number'],
  ReplicateBatchSize: ['replicateBatchSize', 'number'],
  ReplicateMaximumConcurrency: ['replicateMaximumConcurrency', 'number'],
  ReplicateJobConcurrency: ['replicateJobConcurrency', 'number'],
  DestinationsPerJob: ['destinationsPerJob', 'number'],
  ReconcileSchedule: ['reconcileSchedule', 'string'],
  ReconcileMaxJobsPerRun: ['reconcileMaxJobsPerRun', 'number'],
  SourceRepositoryArns: ['sourceRepositoryArns', 'list'],
  DestinationRepositoryArns: ['destinationRepositoryArns', 'list'],
  DestinationRoleArns: ['destinationRoleArns', 'list'],
  DestinationReadRoleArns: ['destinationReadRoleArns', 'list'],
  CredentialSecretArns: ['credentialSecretArns', 'list'],
  KmsKeyArns: ['kmsKeyArns', 'list'],
  PermissionsBoundaryArn: ['permissionsBoundaryArn', 'string'],
  JobsQueueSenderArns: ['jobsQueueSenderArns', 'list'],
  OrganizationAccess: ['organizationAccess', 'string'],
  OrganizationRoleArn: ['organizationRoleArn', 'string'],
  OrganizationCacheSeconds: ['organizationCacheSeconds', 'number'],
  SubnetIds: ['subnetIds', 'list'],
  SecurityGroupIds: ['securityGroupIds', 'list'],
  AlarmEmail: ['alarmEmail', 'string'],
  JobAgeAlarmSeconds: ['jobAgeAlarmSeconds', 'number'],
  ReplicationLagAlarmSeconds: ['replicationLagAlarmSeconds', 'number'],
};

export const DESTINATION_PARAMETERS: ParameterMap<FerryDestinationProps> = {
  HubAccountId: ['hubAccountId', 'string'],
  HubReplicateRoleArn: ['hubReplicateRoleArn', 'string'],
  HubReconcileRoleArn: ['hubReconcileRoleArn', 'string'],
  TrustHubAccountRoot: ['trustHubAccountRoot', 'boolean'],
  RepositoryPrefix: ['repositoryPrefix', 'string'],
  ImageTagMutability: ['imageTagMutability', 'string'],
  ImageTagMutabilityExclusionFilter: ['imageTagMutabilityExclusionFilter', 'string'],
  KmsKeyArn: ['kmsKeyArn', 'string'],
  CreationTemplateRoleArn: ['creationTemplateRoleArn', 'string'],
  KeepTaggedImages: ['keepTaggedImages', 'number'],
  UntaggedExpiryDays: ['untaggedExpiryDays', 'number'],
  RegistryScanType: ['registryScanType', 'string'],
  ManageRegistryPolicy: ['manageRegistryPolicy', 'boolean'],
  AllowNativeReplication: ['allowNativeReplication', 'boolean'],
  CreateAssumeRole: ['createAssumeRole', 'boolean'],
  AssumeRoleName: ['assumeRoleName', 'string'],
  ExternalId: ['externalId', 'string'],
  OperatorPrincipalArns: ['operatorPrincipalArns', 'list'],
  OperatorWriteAccess: ['operatorWriteAccess', 'boolean'],
};

export const FORWARDER_PARAMETERS: ParameterMap<FerryForwarderProps> = {
  HubRegion: ['hubRegion', 'string'],
  HubAccountId: ['hubAccountId', 'string'],
  AlarmTopicArn: ['alarmTopicArn', 'string'],
};

/** Props from parameter values (an empty value is an unset prop, as the templates read ""). */
export function propsFrom<P>(map: ParameterMap<P>, values: ParameterValues): Partial<P> {
  const props: Record<string, unknown> = {};
  for (const [parameter, value] of Object.entries(values)) {
    const entry = map[parameter];
    if (entry === undefined) {
      throw new Error(`parameter ${parameter} has no prop (add it to test/parity-map.ts and the construct)`);
    }
    const [prop, kind] = entry;
    if (value === '') {
      continue;
    }
    props[prop as string] =
      kind === 'number'
        ? Number(value)
        : kind === 'list'
          ? value.split(',')
          : kind === 'boolean'
            ? value === 'true'
            : kind === 'json'
              ? JSON.parse(value)
              : value;
  }
  return props as Partial<P>;
}

/** The parameter sets of infra/lint-variants.yaml for one template. */
export function lintVariants(template: string): Record<string, ParameterValues> {
  const variants = readTemplate(path.join(REPO, 'infra', 'lint-variants.yaml'));
  const out: Record<string, ParameterValues> = {};
  for (const [name, v] of Object.entries<any>(variants)) {
    if (v.template === template) {
      out[`lint-variants ${name}`] = Object.fromEntries(
        Object.entries<any>(v.parameters).map(([k, value]) => [k, String(value)]),
      );
    }
  }
  assert.ok(Object.keys(out).length > 0, `no variants of ${template}`);
  return out;
}

const MINIMAL_HUB: ParameterValues = {
  ReplicationConfig: '{"rules":[]}',
  SourceRepositoryArns: 'arn:aws:ecr:us-east-1:111111111111:repository/team/*',
};

export const HUB_SETS: Record<string, ParameterValues> = {
  minimal: MINIMAL_HUB,
  tuned: {
    ...MINIMAL_HUB,
    ConfigParameterTier: 'Advanced',
    Architecture: 'x86_64',
    LogLevel: 'debug',
    LogRetentionDays: '90',
    ReplicateMemorySize: '2048',
    ReplicateTimeout: '300',
    ReplicateBatchSize: '5',
    ReplicateMaximumConcurrency: '20',
    ReplicateJobConcurrency: '8',
    DestinationsPerJob: '20',
    ReconcileSchedule: 'cron(0 * * * ? *)',
    ReconcileMaxJobsPerRun: '50',
    OrganizationAccess: 'direct',
    OrganizationCacheSeconds: '60',
    JobAgeAlarmSeconds: '600',
    ReplicationLagAlarmSeconds: '900',
  },
  ...lintVariants('template.yaml'),
};

export const DESTINATION_SETS: Record<string, ParameterValues> = {
  minimal: {
    HubAccountId: '111111111111',
    HubReplicateRoleArn: 'arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC',
    HubReconcileRoleArn: 'arn:aws:iam::111111111111:role/ferry-ReconcileRole-DEF',
  },
  'operators read-only, external ID': {
    HubAccountId: '111111111111',
    HubReplicateRoleArn: 'arn:aws:iam::111111111111:role/ferry-ReplicateRole-ABC',
    HubReconcileRoleArn: 'arn:aws:iam::111111111111:role/ferry-ReconcileRole-DEF',
    ExternalId: 'ferry-external-id',
    OperatorPrincipalArns: 'arn:aws:iam::444444444444:role/ferry-operator',
  },
  ...lintVariants('destination.yaml'),
};

export const FORWARDER_SETS: Record<string, ParameterValues> = {
  minimal: { HubRegion: 'us-east-1' },
  ...lintVariants('forwarder.yaml'),
};

