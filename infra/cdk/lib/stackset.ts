/**
 * FerryDestinationStackSet: the FerryDestination as a service-managed StackSet over
 * organizational units (auto-deployment to accounts that join them). The destination is
 * synthesized into its own template (no bootstrap resources, so the target accounts need
 * no CDK bootstrap) that becomes the StackSet's TemplateBody, checked by cdk-nag like
 * every other Ferry stack. An external ID never lands in the TemplateBody: the body takes
 * it as a NoEcho parameter, and the StackSet passes the value (pass a NoEcho CfnParameter's
 * value as `destination.externalId` to keep it out of the outer template too).
 */
import { App, BootstraplessSynthesizer, CfnParameter, CfnStackSet, Stack, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { FerryDestination, FerryDestinationProps } from './destination';
import { matches } from './check';
import { checkWithNag, suppressFerryFindings } from './nag';

/** Props of {@link FerryDestinationStackSet}. */
export interface FerryDestinationStackSetProps {
  /** The destination every stack instance deploys. */
  readonly destination: FerryDestinationProps;
  /** The organizational units (or the root) whose accounts receive the destination. */
  readonly organizationalUnitIds: string[];
  /** The destination regions. */
  readonly regions: string[];
  /** @default 'ferry-destination' */
  readonly stackSetName?: string;
  /** SELF in the management account, DELEGATED_ADMIN in a delegated administrator. @default 'SELF' */
  readonly callAs?: 'SELF' | 'DELEGATED_ADMIN';
}

/**
 * The destination template a StackSet deploys (JSON), nag-checked; throws on nag errors.
 * With an external ID, the template has a NoEcho parameter `ExternalId` in its place (the
 * value never appears in the template).
 */
export function destinationTemplate(props: FerryDestinationProps): Record<string, unknown> {
  const app = new App({ analyticsReporting: false });
  const stack = new Stack(app, 'FerryDestination', { synthesizer: new BootstraplessSynthesizer() });
  const externalId = props.externalId
    ? new CfnParameter(stack, 'ExternalId', {
        type: 'String',
        noEcho: true,
        description: 'External ID the hub passes to assume the roles (externalId in the configuration)',
      }).valueAsString
    : undefined;
  new FerryDestination(stack, 'Destination', { ...props, externalId });
  checkWithNag(app);
  suppressFerryFindings(stack);
  const artifact = app.synth().getStackByName(stack.stackName);
  const errors = artifact.messages.filter((m) => m.level === 'error');
  if (errors.length > 0) {
    throw new Error(`FerryDestinationStackSet: cdk-nag errors:\n  ${errors.map((m) => `${m.id}: ${m.entry.data}`).join('\n  ')}`);
  }
  return artifact.template as Record<string, unknown>;
}

/** The StackSet; see the module documentation. */
export class FerryDestinationStackSet extends Construct {
  /** The StackSet resource. */
  readonly stackSet: CfnStackSet;

  constructor(scope: Construct, id: string, props: FerryDestinationStackSetProps) {
    super(scope, id);
    const externalId = props.destination.externalId || undefined;
    if (externalId !== undefined && !Token.isUnresolved(externalId)) {
      matches('FerryDestinationStackSet', 'externalId', [externalId], /^[a-zA-Z0-9+=,.@:/_-]{2,1224}$/);
    }
    this.stackSet = new CfnStackSet(this, 'StackSet', {
      stackSetName: props.stackSetName ?? 'ferry-destination',
      description: 'Ferry destination (FerryDestination construct) in every account of the organizational units',
      permissionModel: 'SERVICE_MANAGED',
      autoDeployment: { enabled: true, retainStacksOnAccountRemoval: false },
      callAs: props.callAs ?? 'SELF',
      capabilities: ['CAPABILITY_NAMED_IAM'],
      managedExecution: { Active: true },
      operationPreferences: { failureToleranceCount: 0, maxConcurrentPercentage: 25, regionConcurrencyType: 'PARALLEL' },
      stackInstancesGroup: [
        { deploymentTargets: { organizationalUnitIds: props.organizationalUnitIds }, regions: props.regions },
      ],
      templateBody: JSON.stringify(destinationTemplate(props.destination)),
      parameters: externalId === undefined ? undefined : [{ parameterKey: 'ExternalId', parameterValue: externalId }],
    });
  }
}
