/**
 * Props of FerryHub: one prop per parameter of infra/template.yaml (the parity test maps
 * them one to one), checked at synth time like the template's Parameters and Rules.
 */
import { FerryArchitecture, FerryCode } from './code';
import { inRange, matches, matchesIf, oneOf, PATTERNS, require_ } from './check';
import { validateConfig } from './config';

/** Log level of the functions (RUST_LOG and the Lambda application log level). */
export type FerryLogLevel = 'trace' | 'debug' | 'info';

/** How the functions read AWS Organizations for organization destinations. */
export type OrganizationAccess = 'none' | 'role' | 'direct';

/** Tier of the SSM parameter the hub creates. */
export type ConfigParameterTier = 'Standard' | 'Advanced' | 'Intelligent-Tiering';

/** Props of {@link FerryHub}; defaults are those of infra/template.yaml. */
export interface FerryHubProps {
  /** Function code: prebuilt bootstrap files or a cargo-lambda build from source. */
  readonly code: FerryCode;
  /**
   * The replication configuration (validated against schema/ferry-config.schema.json),
   * stored by the hub in a String SSM parameter /ferry/<stack>/config. Exactly one of
   * `config` and `existingConfigParameterName`.
   */
  readonly config?: unknown;
  /**
   * Name (starting with /) of an SSM parameter you manage (a SecureString for a
   * configuration with an externalId, or an Advanced parameter up to 8 KB).
   */
  readonly existingConfigParameterName?: string;
  /** Customer managed KMS key of that SecureString (needs existingConfigParameterName). */
  readonly configKmsKeyArn?: string;
  /** Tier of the parameter the hub creates. @default 'Intelligent-Tiering' */
  readonly configParameterTier?: ConfigParameterTier;
  /** Lambda architecture; must match the build. @default 'arm64' */
  readonly architecture?: FerryArchitecture;
  /** @default 'info' */
  readonly logLevel?: FerryLogLevel;
  /** Retention of the log groups (a CloudWatch Logs retention value). @default 30 */
  readonly logRetentionDays?: number;
  /** X-Ray tracing. @default 'PassThrough' */
  readonly tracingMode?: 'PassThrough' | 'Active';
  /** Memory (MB) of replicate. @default 1024 */
  readonly replicateMemorySize?: number;
  /** Timeout (s) of replicate; the jobs queue visibility timeout is six times it. @default 900 */
  readonly replicateTimeout?: 60 | 120 | 180 | 300 | 600 | 900;
  /** Jobs per replicate invocation (1-10). @default 10 */
  readonly replicateBatchSize?: number;
  /** MaximumConcurrency of the SQS event source (2-1000). @default 10 */
  readonly replicateMaximumConcurrency?: number;
  /** FERRY_JOB_CONCURRENCY (1-64). @default 4 */
  readonly replicateJobConcurrency?: number;
  /**
   * FERRY_DESTINATIONS_PER_JOB (1-50): destinations one copy job carries (dispatch and
   * reconcile); replicate reads the image from the source once for all of them. @default 50
   */
  readonly destinationsPerJob?: number;
  /** Schedule expression of reconcile. @default 'rate(15 minutes)' */
  readonly reconcileSchedule?: string;
  /** FERRY_MAX_JOBS_PER_RUN (1-100000): what the replicate fleet consumes in one schedule interval. @default 3600 */
  readonly reconcileMaxJobsPerRun?: number;
  /** Required: ECR repository ARNs (patterns) the functions may read. */
  readonly sourceRepositoryArns: string[];
  /** ECR repository ARN patterns replicate may push to and reconcile read. @default none */
  readonly destinationRepositoryArns?: string[];
  /** Destination role ARNs (patterns) replicate may assume. @default none */
  readonly destinationRoleArns?: string[];
  /**
   * Destination read role ARNs (patterns) reconcile may assume to list and read destinations
   * (the configuration's readRoleArn), e.g. arn:aws:iam::*:role/ferry-destination-read-*.
   * Reconcile never assumes a write role. @default none: reconcile assumes no destination role
   */
  readonly destinationReadRoleArns?: string[];
  /** Secrets Manager secrets of registry credentials. @default none */
  readonly credentialSecretArns?: string[];
  /** KMS keys of those secrets and of repositories Ferry creates. @default none */
  readonly kmsKeyArns?: string[];
  /** Permissions boundary of the three roles. @default none */
  readonly permissionsBoundaryArn?: string;
  /** Principals besides dispatch and reconcile that may send to the jobs queue. @default none */
  readonly jobsQueueSenderArns?: string[];
  /** @default 'none' */
  readonly organizationAccess?: OrganizationAccess;
  /** The organization reader role, with organizationAccess 'role' (only then). */
  readonly organizationRoleArn?: string;
  /** FERRY_ORGANIZATION_TTL_SECONDS (0-86400). @default 900 */
  readonly organizationCacheSeconds?: number;
  /** Private subnets of the functions (they then need VPC endpoints or NAT). @default none */
  readonly subnetIds?: string[];
  /** Security groups of the functions, with subnetIds. @default none */
  readonly securityGroupIds?: string[];
  /** E-mail subscribed to an alarm topic. @default no topic */
  readonly alarmEmail?: string;
  /** Alarm when the oldest job waited longer (60-1209600 s). @default 1800 */
  readonly jobAgeAlarmSeconds?: number;
  /** Alarm when the p99 replication lag (push to replica) over 5 minutes is longer (60-1209600 s). @default 1800 */
  readonly replicationLagAlarmSeconds?: number;
}

/** FerryHubProps with every default applied and every check passed. */
export interface ResolvedHubProps {
  readonly code: FerryCode;
  /** JSON text of the configuration the hub stores, or undefined with an existing parameter. */
  readonly configJson?: string;
  readonly existingConfigParameterName?: string;
  readonly configKmsKeyArn?: string;
  readonly configParameterTier: ConfigParameterTier;
  readonly architecture: FerryArchitecture;
  readonly logLevel: FerryLogLevel;
  readonly logRetentionDays: number;
  readonly tracingMode: 'PassThrough' | 'Active';
  readonly replicateMemorySize: number;
  readonly replicateTimeout: number;
  readonly replicateBatchSize: number;
  readonly replicateMaximumConcurrency: number;
  readonly replicateJobConcurrency: number;
  readonly destinationsPerJob: number;
  readonly reconcileSchedule: string;
  readonly reconcileMaxJobsPerRun: number;
  readonly sourceRepositoryArns: string[];
  readonly destinationRepositoryArns: string[];
  readonly destinationRoleArns: string[];
  readonly destinationReadRoleArns: string[];
  readonly credentialSecretArns: string[];
  readonly kmsKeyArns: string[];
  readonly permissionsBoundaryArn?: string;
  readonly jobsQueueSenderArns: string[];
  readonly organizationAccess: OrganizationAccess;
  readonly organizationRoleArn?: string;
  readonly organizationCacheSeconds: number;
  readonly subnetIds: string[];
  readonly securityGroupIds: string[];
  readonly alarmEmail?: string;
  readonly jobAgeAlarmSeconds: number;
  readonly replicationLagAlarmSeconds: number;
}

const NAME = 'FerryHub';
const LOG_RETENTION = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];
const REPLICATE_TIMEOUTS = [60, 120, 180, 300, 600, 900];

/** The string, or undefined when it is empty (the templates' "" default). */
function given(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Applies the defaults and the checks of infra/template.yaml's Parameters and Rules. */
export function resolveHubProps(props: FerryHubProps): ResolvedHubProps {
  const existing = given(props.existingConfigParameterName);
  const configKmsKeyArn = given(props.configKmsKeyArn);
  require_(
    NAME,
    (props.config !== undefined) !== (existing !== undefined),
    'set config, or existingConfigParameterName for a parameter you manage (exactly one)',
  );
  require_(
    NAME,
    configKmsKeyArn === undefined || existing !== undefined,
    'configKmsKeyArn is the key of a SecureString you created: set existingConfigParameterName too',
  );
  const tier = props.configParameterTier ?? 'Intelligent-Tiering';
  oneOf(NAME, 'configParameterTier', tier, ['Standard', 'Advanced', 'Intelligent-Tiering'] as const);
  const configJson = props.config === undefined ? undefined : validateConfig(props.config);
  if (configJson !== undefined) {
    require_(
      NAME,
      !configJson.includes('"externalId"'),
      'a configuration holding an externalId belongs in a SecureString you create: set existingConfigParameterName instead of config',
    );
    const limit = tier === 'Standard' ? 4096 : 8192;
    require_(NAME, Buffer.byteLength(configJson) <= limit, `the configuration is over ${limit} bytes (tier ${tier})`);
  }
  matchesIf(NAME, 'existingConfigParameterName', existing, PATTERNS.parameterName);
  matchesIf(NAME, 'configKmsKeyArn', configKmsKeyArn, PATTERNS.kmsKeyArn);

  const organizationAccess = props.organizationAccess ?? 'none';
  oneOf(NAME, 'organizationAccess', organizationAccess, ['none', 'role', 'direct'] as const);
  const organizationRoleArn = given(props.organizationRoleArn);
  require_(
    NAME,
    (organizationAccess === 'role') === (organizationRoleArn !== undefined),
    "organizationRoleArn is set with organizationAccess 'role', and only then",
  );
  matchesIf(NAME, 'organizationRoleArn', organizationRoleArn, PATTERNS.organizationRoleArn);

  require_(NAME, props.sourceRepositoryArns.length > 0, 'sourceRepositoryArns is required');
  matches(NAME, 'sourceRepositoryArns', props.sourceRepositoryArns, PATTERNS.ecrRepositoryArn);
  const permissionsBoundaryArn = given(props.permissionsBoundaryArn);
  matchesIf(NAME, 'permissionsBoundaryArn', permissionsBoundaryArn, PATTERNS.policyArn);
  matches(NAME, 'jobsQueueSenderArns', props.jobsQueueSenderArns, PATTERNS.queueSenderArn);
  const alarmEmail = given(props.alarmEmail);
  matchesIf(NAME, 'alarmEmail', alarmEmail, PATTERNS.email);
  const reconcileSchedule = props.reconcileSchedule ?? 'rate(15 minutes)';
  matches(NAME, 'reconcileSchedule', [reconcileSchedule], PATTERNS.schedule);

  const resolved: ResolvedHubProps = {
    code: props.code,
    configJson,
    existingConfigParameterName: existing,
    configKmsKeyArn,
    configParameterTier: tier,
    architecture: props.architecture ?? 'arm64',
    logLevel: props.logLevel ?? 'info',
    logRetentionDays: props.logRetentionDays ?? 30,
    tracingMode: props.tracingMode ?? 'PassThrough',
    replicateMemorySize: props.replicateMemorySize ?? 1024,
    replicateTimeout: props.replicateTimeout ?? 900,
    replicateBatchSize: props.replicateBatchSize ?? 10,
    replicateMaximumConcurrency: props.replicateMaximumConcurrency ?? 10,
    replicateJobConcurrency: props.replicateJobConcurrency ?? 4,
    destinationsPerJob: props.destinationsPerJob ?? 50,
    reconcileSchedule,
    reconcileMaxJobsPerRun: props.reconcileMaxJobsPerRun ?? 3600,
    sourceRepositoryArns: props.sourceRepositoryArns,
    destinationRepositoryArns: props.destinationRepositoryArns ?? [],
    destinationRoleArns: props.destinationRoleArns ?? [],
    destinationReadRoleArns: props.destinationReadRoleArns ?? [],
    credentialSecretArns: props.credentialSecretArns ?? [],
    kmsKeyArns: props.kmsKeyArns ?? [],
    permissionsBoundaryArn,
    jobsQueueSenderArns: props.jobsQueueSenderArns ?? [],
    organizationAccess,
    organizationRoleArn,
    organizationCacheSeconds: props.organizationCacheSeconds ?? 900,
    subnetIds: props.subnetIds ?? [],
    securityGroupIds: props.securityGroupIds ?? [],
    alarmEmail,
    jobAgeAlarmSeconds: props.jobAgeAlarmSeconds ?? 1800,
    replicationLagAlarmSeconds: props.replicationLagAlarmSeconds ?? 1800,
  };
  oneOf(NAME, 'architecture', resolved.architecture, ['arm64', 'x86_64'] as const);
  oneOf(NAME, 'logLevel', resolved.logLevel, ['trace', 'debug', 'info'] as const);
  oneOf(NAME, 'logRetentionDays', resolved.logRetentionDays, LOG_RETENTION);
  oneOf(NAME, 'tracingMode', resolved.tracingMode, ['PassThrough', 'Active'] as const);
  oneOf(NAME, 'replicateTimeout', resolved.replicateTimeout, REPLICATE_TIMEOUTS);
  inRange(NAME, 'replicateMemorySize', resolved.replicateMemorySize, 128, 10240);
  inRange(NAME, 'replicateBatchSize', resolved.replicateBatchSize, 1, 10);
  inRange(NAME, 'replicateMaximumConcurrency', resolved.replicateMaximumConcurrency, 2, 1000);
  inRange(NAME, 'replicateJobConcurrency', resolved.replicateJobConcurrency, 1, 64);
  inRange(NAME, 'destinationsPerJob', resolved.destinationsPerJob, 1, 50);
  inRange(NAME, 'reconcileMaxJobsPerRun', resolved.reconcileMaxJobsPerRun, 1, 100000);
  inRange(NAME, 'organizationCacheSeconds', resolved.organizationCacheSeconds, 0, 86400);
  inRange(NAME, 'jobAgeAlarmSeconds', resolved.jobAgeAlarmSeconds, 60, 1209600);
  inRange(NAME, 'replicationLagAlarmSeconds', resolved.replicationLagAlarmSeconds, 60, 1209600);
  require_(
    NAME,
    resolved.securityGroupIds.length === 0 || resolved.subnetIds.length > 0,
    'securityGroupIds needs subnetIds',
  );
  return resolved;
}
