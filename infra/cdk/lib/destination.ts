/**
 * FerryDestination: infra/destination.yaml, one per destination account and region (a
 * StackSet, or a Stage per account). Lets the hub push under a repository prefix through a
 * write role the hub's replicate role assumes, with a read role for the hub and operators
 * and a repository creation template. With its defaults it creates no account-wide
 * resource: the registry policy and the registry scanning configuration (one of each per
 * account and region, which the stack would replace) are opt-in. No hard-coded account:
 * the stack is StackSets-ready.
 */
import { Aws, CfnOutput, CfnResource, Fn, Token } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ECR_LIST, ECR_PUSH, ECR_PUSH_AND_LIST, ECR_READ } from './actions';
import { inRange, matches, matchesIf, oneOf, PATTERNS, require_ } from './check';

/** Tag mutability of the repositories the template creates. */
export type TagMutability = 'MUTABLE' | 'IMMUTABLE' | 'IMMUTABLE_WITH_EXCLUSION' | 'MUTABLE_WITH_EXCLUSION';

/** Props of {@link FerryDestination}; defaults are those of infra/destination.yaml. */
export interface FerryDestinationProps {
  /** Account of the hub (native replication principal; everything with trustHubAccountRoot). */
  readonly hubAccountId: string;
  /** ReplicateRoleArn of the hub: the only principal that may push and delete here. */
  readonly hubReplicateRoleArn?: string;
  /** ReconcileRoleArn of the hub: may only read under the prefix. Set with hubReplicateRoleArn. */
  readonly hubReconcileRoleArn?: string;
  /** With no hub role ARNs, trust the whole hub account (its IAM policies decide). @default false */
  readonly trustHubAccountRoot?: boolean;
  /** Repository namespace Ferry may write to, without trailing slash; 'ROOT' for all. @default 'golden' */
  readonly repositoryPrefix?: string;
  /** @default 'IMMUTABLE' */
  readonly imageTagMutability?: TagMutability;
  /** Wildcard tag filter, required with the *_WITH_EXCLUSION mutabilities. */
  readonly imageTagMutabilityExclusionFilter?: string;
  /** KMS key for the repositories created under the prefix. @default AES256 */
  readonly kmsKeyArn?: string;
  /** Role ECR assumes to apply the creation template (needed with a KMS key). */
  readonly creationTemplateRoleArn?: string;
  /** Lifecycle: keep this many most recent tagged images (1-10000). @default 20 */
  readonly keepTaggedImages?: number;
  /** Lifecycle: expire untagged images after this many days (1-3650). @default 3 */
  readonly untaggedExpiryDays?: number;
  /**
   * UNMANAGED leaves the registry scanning configuration alone; BASIC or ENHANCED create the
   * registry's one (account-wide) scanning configuration, replacing the account's. @default 'UNMANAGED'
   */
  readonly registryScanType?: 'BASIC' | 'ENHANCED' | 'UNMANAGED';
  /** Create the registry's one (account-wide) registry policy, replacing the account's. @default false */
  readonly manageRegistryPolicy?: boolean;
  /** Also allow ECR native replication from the hub account. @default false */
  readonly allowNativeReplication?: boolean;
  /** Create the write role the hub's replicate role assumes, and the read role. @default true */
  readonly createAssumeRole?: boolean;
  /** Name of the write role; the region is appended (read role: <name>-read-<region>). @default 'ferry-destination' */
  readonly assumeRoleName?: string;
  /**
   * External ID the hub passes to assume the roles: optional with hubReplicateRoleArn (the
   * trust is pinned to the hub's role ARNs), required with trustHubAccountRoot. A literal
   * lands in the template: pass a NoEcho CfnParameter's value (a token) to keep it out.
   */
  readonly externalId?: string;
  /** Operator role ARNs that may assume the read role (ferry plan, verify, status). @default none */
  readonly operatorPrincipalArns?: string[];
  /** The operators may also assume the write role (ferry sync backfills). @default false */
  readonly operatorWriteAccess?: boolean;
}

const NAME = 'FerryDestination';
const PREFIX = /^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*|ROOT)$/;

/** The destination; see the module documentation. */
export class FerryDestination extends Construct {
  /** Repositories Ferry may write to (DestinationRepositoryArns of the hub). */
  readonly repositoryArnPattern: string;
  /** The write role the hub assumes, when createAssumeRole. */
  readonly assumeRole?: iam.CfnRole;
  /** The read role (hub and operators), when createAssumeRole. */
  readonly readRole?: iam.CfnRole;

  constructor(scope: Construct, id: string, props: FerryDestinationProps) {
    super(scope, id);
    const replicate = props.hubReplicateRoleArn || undefined;
    const reconcile = props.hubReconcileRoleArn || undefined;
    const filter = props.imageTagMutabilityExclusionFilter || undefined;
    const kmsKeyArn = props.kmsKeyArn || undefined;
    const templateRole = props.creationTemplateRoleArn || undefined;
    const mutability = props.imageTagMutability ?? 'IMMUTABLE';
    const scanType = props.registryScanType ?? 'UNMANAGED';
    const prefix = props.repositoryPrefix ?? 'golden';
    const operators = (props.operatorPrincipalArns ?? []).filter((a) => a !== '');
    const keep = props.keepTaggedImages ?? 20;
    const untaggedDays = props.untaggedExpiryDays ?? 3;
    const roleName = props.assumeRoleName ?? 'ferry-destination';
    matches(NAME, 'hubAccountId', [props.hubAccountId], PATTERNS.accountId);
    matchesIf(NAME, 'hubReplicateRoleArn', replicate, PATTERNS.roleArn);
    matchesIf(NAME, 'hubReconcileRoleArn', reconcile, PATTERNS.roleArn);
    matches(NAME, 'repositoryPrefix', [prefix], PREFIX);
    matches(NAME, 'operatorPrincipalArns', operators, /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@/-]+$/);
    matchesIf(NAME, 'imageTagMutabilityExclusionFilter', filter, /^[0-9a-zA-Z._*-]{1,128}$/);
    matchesIf(NAME, 'kmsKeyArn', kmsKeyArn, PATTERNS.kmsKeyArn);
    matchesIf(NAME, 'creationTemplateRoleArn', templateRole, PATTERNS.roleArn);
    matches(NAME, 'assumeRoleName', [roleName], /^[a-zA-Z0-9+=,.@_-]{1,40}$/);
    oneOf(NAME, 'imageTagMutability', mutability, [
      'MUTABLE',
      'IMMUTABLE',
      'IMMUTABLE_WITH_EXCLUSION',
      'MUTABLE_WITH_EXCLUSION',
    ] as const);
    oneOf(NAME, 'registryScanType', scanType, ['BASIC', 'ENHANCED', 'UNMANAGED'] as const);
    inRange(NAME, 'keepTaggedImages', keep, 1, 10000);
    inRange(NAME, 'untaggedExpiryDays', untaggedDays, 1, 3650);
    require_(
      NAME,
      !mutability.endsWith('_WITH_EXCLUSION') || filter !== undefined,
      'the *_WITH_EXCLUSION mutabilities need imageTagMutabilityExclusionFilter',
    );
    require_(
      NAME,
      replicate !== undefined || props.trustHubAccountRoot === true,
      'set hubReplicateRoleArn and hubReconcileRoleArn (the hub outputs), or trustHubAccountRoot to trust the whole hub account',
    );
    require_(NAME, (replicate === undefined) === (reconcile === undefined), 'set hubReplicateRoleArn and hubReconcileRoleArn together');
    const externalId = props.externalId || undefined;
    const createRoles = props.createAssumeRole ?? true;
    if (createRoles) {
      require_(
        NAME,
        externalId !== undefined || replicate !== undefined,
        'roles that trust the hub account root (trustHubAccountRoot) need an externalId',
      );
    }
    if (externalId !== undefined && !Token.isUnresolved(externalId)) {
      matches(NAME, 'externalId', [externalId], /^[a-zA-Z0-9+=,.@:/_-]{2,1224}$/);
    }

    const root = prefix === 'ROOT';
    const repositories = Fn.sub(
      `arn:\${AWS::Partition}:ecr:\${AWS::Region}:\${AWS::AccountId}:repository/${root ? '' : prefix + '/'}*`,
    );
    this.repositoryArnPattern = repositories;
    const hubRoot = Fn.sub(`arn:\${AWS::Partition}:iam::${props.hubAccountId}:root`);
    const pusher = replicate ?? hubRoot;

    if (props.manageRegistryPolicy ?? false) {
      const statements: unknown[] = [
        {
          Sid: 'FerryPush',
          Effect: 'Allow',
          Principal: { AWS: pusher },
          Action: ECR_PUSH,
          Resource: repositories,
        },
        {
          Sid: 'FerryReconcileRead',
          Effect: 'Allow',
          Principal: { AWS: replicate !== undefined ? [replicate, reconcile] : hubRoot },
          Action: ECR_LIST,
          Resource: repositories,
        },
      ];
      if (props.allowNativeReplication === true) {
        statements.push({
          Sid: 'NativeReplication',
          Effect: 'Allow',
          Principal: { AWS: hubRoot },
          Action: ['ecr:ReplicateImage', 'ecr:CreateRepository'],
          Resource: repositories,
        });
      }
      new ecr.CfnRegistryPolicy(this, 'RegistryPolicy', {
        policyText: { Version: '2012-10-17', Statement: statements },
      });
    }

    const template = new ecr.CfnRepositoryCreationTemplate(this, 'CreationTemplate', {
      prefix,
      description: 'Repositories created by Ferry (CREATE_ON_PUSH) or by ECR native replication',
      appliedFor: ['REPLICATION', 'CREATE_ON_PUSH'],
      imageTagMutability: mutability,
      imageTagMutabilityExclusionFilters: filter === undefined ? undefined : [
        { imageTagMutabilityExclusionFilterType: 'WILDCARD', imageTagMutabilityExclusionFilterValue: filter },
      ],
      encryptionConfiguration: { encryptionType: kmsKeyArn ? 'KMS' : 'AES256', kmsKey: kmsKeyArn },
      customRoleArn: templateRole,
      lifecyclePolicy: JSON.stringify({
        rules: [
          {
            rulePriority: 1,
            description: `Expire untagged images ${untaggedDays} days after push`,
            selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: untaggedDays },
            action: { type: 'expire' },
          },
          {
            rulePriority: 2,
            description: `Keep the ${keep} most recent tagged images`,
            selection: { tagStatus: 'tagged', tagPatternList: ['*'], countType: 'imageCountMoreThan', countNumber: keep },
            action: { type: 'expire' },
          },
        ],
      }),
    });

    if (scanType !== 'UNMANAGED') {
      new ecr.CfnRegistryScanningConfiguration(this, 'RegistryScanning', {
        scanType,
        rules: [
          {
            scanFrequency: 'SCAN_ON_PUSH',
            repositoryFilters: [{ filterType: 'WILDCARD', filter: root ? '*' : `${prefix}/*` }],
          },
        ],
      });
    }

    if (createRoles) {
      // Pinned to the hub's role ARNs (aws:PrincipalArn) and, when set, the external ID.
      const hubCondition = (principals: string | string[]): Record<string, unknown> => ({
        ...(replicate !== undefined ? { ArnEquals: { 'aws:PrincipalArn': principals } } : {}),
        ...(externalId !== undefined ? { StringEquals: { 'sts:ExternalId': externalId } } : {}),
      });
      const operatorStatement = (sid: string) => ({
        Sid: sid,
        Effect: 'Allow',
        Principal: { AWS: operators },
        Action: 'sts:AssumeRole',
        Condition: { ArnEquals: { 'aws:PrincipalArn': operators } },
      });
      const login = { Sid: 'EcrRegistryLogin', Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' };
      // This registry's managed signing configuration (registry-level, read-only).
      const signing = { Sid: 'ReadSigningConfiguration', Effect: 'Allow', Action: 'ecr:GetSigningConfiguration', Resource: '*' };
      const statements: unknown[] = [
        login,
        // Whether this account's registry accepts blob mounts (BLOB_MOUNTING).
        { Sid: 'ReadAccountSettings', Effect: 'Allow', Action: 'ecr:GetAccountSetting', Resource: '*' },
        signing,
        {
          Sid: 'PushUnderPrefix',
          Effect: 'Allow',
          Action: ECR_PUSH_AND_LIST,
          Resource: repositories,
        },
      ];
      if (kmsKeyArn !== undefined) {
        statements.push({
          Sid: 'CreateKmsEncryptedRepositories',
          Effect: 'Allow',
          Action: ['kms:DescribeKey', 'kms:CreateGrant'],
          Resource: kmsKeyArn,
          Condition: { StringEquals: { 'kms:ViaService': Fn.sub('ecr.${AWS::Region}.amazonaws.com') } },
        });
      }
      // The write/delete role trusts the replicate role only; reconcile never writes.
      this.assumeRole = new iam.CfnRole(this, 'AssumeRole', {
        roleName: `${roleName}-${Aws.REGION}`,
        description: "Assumed by the Ferry hub's replicate role to push under the repository prefix",
        maxSessionDuration: 3600,
        assumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'FerryHub',
              Effect: 'Allow',
              Principal: { AWS: pusher },
              Action: 'sts:AssumeRole',
              Condition: hubCondition(pusher),
            },
            ...(operators.length > 0 && props.operatorWriteAccess === true ? [operatorStatement('OperatorBackfill')] : []),
          ],
        },
        policies: [{ policyName: 'ferry-destination', policyDocument: { Version: '2012-10-17', Statement: statements } }],
      });
      const readers = replicate !== undefined ? [replicate, reconcile as string] : hubRoot;
      this.readRole = new iam.CfnRole(this, 'ReadRole', {
        roleName: `${roleName}-read-${Aws.REGION}`,
        description: 'Assumed by the Ferry hub and operators to read under the repository prefix',
        maxSessionDuration: 3600,
        assumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'FerryHubRead',
              Effect: 'Allow',
              Principal: { AWS: readers },
              Action: 'sts:AssumeRole',
              Condition: hubCondition(readers),
            },
            ...(operators.length > 0 ? [operatorStatement('OperatorRead')] : []),
          ],
        },
        policies: [
          {
            policyName: 'ferry-destination-read',
            policyDocument: {
              Version: '2012-10-17',
              Statement: [login, signing, { Sid: 'ReadUnderPrefix', Effect: 'Allow', Action: ECR_READ, Resource: repositories }],
            },
          },
        ],
      });
      for (const role of [this.assumeRole, this.readRole]) {
        // cfn-lint's IAM action list lacks ecr:ListImageReferrers (docs/deploy.md, section 10).
        (role as CfnResource).addMetadata('cfn-lint', { config: { ignore_checks: ['W3037'] } });
      }
    }

    new CfnOutput(this, 'RepositoryArnPattern', {
      value: repositories,
      description: 'Repositories Ferry may write to (DestinationRepositoryArns of the hub)',
    });
    new CfnOutput(this, 'CreationTemplatePrefix', { value: template.ref });
    if (this.assumeRole !== undefined && this.readRole !== undefined) {
      new CfnOutput(this, 'AssumeRoleArn', {
        value: this.assumeRole.attrArn,
        description: 'roleArn for this destination in the configuration (and DestinationRoleArns of the hub)',
      });
      new CfnOutput(this, 'ReadRoleArn', {
        value: this.readRole.attrArn,
        description: 'The read role (hub reconcile and OperatorPrincipalArns read through it)',
      });
    }
  }
}
