/**
 * The example app of bin/ferry.ts: hub, destination, forwarder and a destination StackSet,
 * from context values (cdk.json holds account-free placeholders). Every stack is checked
 * with cdk-nag AwsSolutionsChecks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, CfnParameter, Stack } from 'aws-cdk-lib';
import { FerryArchitecture, FerryCode } from './code';
import { loadConfigFile } from './config';
import { FerryDestination } from './destination';
import { FerryForwarder } from './forwarder';
import { FerryHub } from './hub';
import { checkWithNag, suppressFerryFindings } from './nag';
import { FerryDestinationStackSet } from './stackset';

/** The stacks of the example app. */
export interface FerryAppStacks {
  readonly hub: Stack;
  readonly destination: Stack;
  readonly forwarders: Stack[];
  readonly stackSet: Stack;
}

function context<T>(app: App, key: string): T {
  const value = app.node.tryGetContext(`ferry:${key}`) as T | undefined;
  if (value === undefined) {
    throw new Error(`ferry app: context ferry:${key} is not set (cdk.json or -c ferry:${key}=...)`);
  }
  return value;
}

/** A context list: a JSON array in cdk.json, or comma-separated text from -c. */
function list(app: App, key: string): string[] {
  const value = context<string[] | string>(app, key);
  return Array.isArray(value) ? value : value.split(',').filter((v) => v !== '');
}

/**
 * Builds the example app's stacks; relative context paths are read from `root`.
 * `logIgnores`: cdk-nag also reports the suppressed findings.
 */
export function ferryApp(app: App, root: string, logIgnores = false): FerryAppStacks {
  const account = context<string>(app, 'hubAccount');
  const region = context<string>(app, 'hubRegion');
  const codeDir = path.resolve(root, context<string>(app, 'codeDirectory'));
  const code: FerryCode =
    app.node.tryGetContext('ferry:buildFromSource') === 'true'
      ? { kind: 'source', manifestPath: path.resolve(root, '..', '..', 'Cargo.toml') }
      : { kind: 'prebuilt', directory: codeDir };
  if (code.kind === 'prebuilt' && !fs.existsSync(codeDir)) {
    throw new Error(
      `ferry app: ${codeDir} does not exist: run make package (or -c ferry:codeDirectory=..., -c ferry:buildFromSource=true)`,
    );
  }
  const hub = new Stack(app, 'FerryHub', { env: { account, region }, description: 'Ferry hub (FerryHub construct)' });
  const ferry = new FerryHub(hub, 'Hub', {
    code,
    architecture: context<FerryArchitecture>(app, 'architecture'),
    config: loadConfigFile(path.resolve(root, context<string>(app, 'configFile'))),
    sourceRepositoryArns: list(app, 'sourceRepositoryArns'),
    destinationRepositoryArns: list(app, 'destinationRepositoryArns'),
    alarmEmail: app.node.tryGetContext('ferry:alarmEmail') as string | undefined,
  });

  // Trusting the hub account root needs an external ID: a NoEcho parameter of each stack
  // that deploys the destination (never a literal in a template).
  const externalIdOf = (stack: Stack): string | undefined =>
    app.node.tryGetContext('ferry:hubReplicateRoleArn') === undefined
      ? new CfnParameter(stack, 'ExternalId', { type: 'String', noEcho: true }).valueAsString
      : undefined;
  const destinationProps = {
    hubAccountId: account,
    // Role ARNs are literal text in another account's stack: the hub's roles get generated
    // names, so pass the hub's ReplicateRoleArn / ReconcileRoleArn outputs after its deploy.
    hubReplicateRoleArn: app.node.tryGetContext('ferry:hubReplicateRoleArn') as string | undefined,
    hubReconcileRoleArn: app.node.tryGetContext('ferry:hubReconcileRoleArn') as string | undefined,
    trustHubAccountRoot: app.node.tryGetContext('ferry:hubReplicateRoleArn') === undefined,
    repositoryPrefix: context<string>(app, 'repositoryPrefix'),
  };
  const destination = new Stack(app, 'FerryDestination', {
    env: { account: context<string>(app, 'destinationAccount'), region: context<string>(app, 'destinationRegion') },
    description: 'Ferry destination (FerryDestination construct)',
  });
  new FerryDestination(destination, 'Destination', { ...destinationProps, externalId: externalIdOf(destination) });

  const forwarders = list(app, 'forwarderRegions').map((forwarderRegion) => {
    const stack = new Stack(app, `FerryForwarder-${forwarderRegion}`, {
      env: { account, region: forwarderRegion },
      description: 'Ferry forwarder (FerryForwarder construct)',
    });
    new FerryForwarder(stack, 'Forwarder', { hubRegion: region });
    return stack;
  });

  const stackSet = new Stack(app, 'FerryDestinationStackSet', {
    env: { account: context<string>(app, 'managementAccount'), region },
    description: 'Ferry destination StackSet over organizational units',
  });
  new FerryDestinationStackSet(stackSet, 'Destinations', {
    destination: { ...destinationProps, externalId: externalIdOf(stackSet) },
    organizationalUnitIds: list(app, 'organizationalUnitIds'),
    regions: list(app, 'destinationRegions'),
  });

  void ferry;
  checkWithNag(app, logIgnores);
  for (const stack of [hub, destination, ...forwarders, stackSet]) {
    suppressFerryFindings(stack);
  }
  return { hub, destination, forwarders, stackSet };
}
