/**
 * cdk-nag AwsSolutionsChecks on every stack of the example app and on the hub, destination
 * and forwarder with every parameter set of the parity test (all features on and off):
 * no unsuppressed error, every suppression with a written reason. Prints one summary line
 * per stack (errors, warnings, suppressed findings).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { ferryApp } from '../lib/app';
import { FerryDestination } from '../lib/destination';
import { FerryForwarder } from '../lib/forwarder';
import { FerryHub } from '../lib/hub';
import { FerryHubProps } from '../lib/hub-props';
import { allSuppressions, checkWithNag, suppressFerryFindings } from '../lib/nag';
import { fixtureCode, PACKAGE, prebuiltFixture } from './fixture';
import {
  DESTINATION_PARAMETERS,
  DESTINATION_SETS,
  FORWARDER_PARAMETERS,
  FORWARDER_SETS,
  HUB_PARAMETERS,
  HUB_SETS,
  propsFrom,
} from './parity-map';

const NAG = Match.stringLikeRegexp('^AwsSolutions-');

/** The rule and finding of an annotation ("AwsSolutions-IAM5[Resource::*]"). */
function finding(data: unknown): string {
  return /^(AwsSolutions-[A-Z0-9]+(\[[^\]]*\])?)/.exec(String(data))?.[1] ?? String(data);
}

/** The rule of an annotation ("AwsSolutions-IAM5"). */
function rule(data: unknown): string {
  return finding(data).replace(/\[.*$/, '');
}

/** Asserts no unsuppressed nag error; returns the summary line of the stack. */
function nagResult(stack: Stack, label: string): string {
  const annotations = Annotations.fromStack(stack);
  const errors = annotations.findError('*', NAG);
  assert.deepEqual(
    errors.map((e) => `${e.id}: ${finding(e.entry.data)}`),
    [],
    `${label}: unsuppressed cdk-nag errors`,
  );
  const warnings = annotations.findWarning('*', NAG);
  for (const r of Object.values<any>((stack.node.root as App).synth().getStackByName(stack.stackName).template.Resources)) {
    for (const s of r.Metadata?.cdk_nag?.rules_to_suppress ?? []) {
      assert.ok(typeof s.reason === 'string' && s.reason.length >= 40, `${label}: ${s.id} needs a written reason`);
    }
  }
  // logIgnores: each suppressed finding is an info annotation naming the rule.
  const suppressed = annotations
    .findInfo('*', Match.stringLikeRegexp('was triggered but suppressed'))
    .map((i) => /(AwsSolutions-[A-Z0-9]+) was triggered/.exec(String(i.entry.data))?.[1] ?? '?');
  const byRule = [...new Set(suppressed)]
    .sort()
    .map((id) => `${id} x${suppressed.filter((s) => s === id).length}`)
    .join(', ');
  return `nag ${label}: errors 0, warnings ${warnings.length}, suppressed findings ${suppressed.length} (${byRule})`;
}

function checked(build: (stack: Stack) => void): Stack {
  const app = new App({ analyticsReporting: false });
  const stack = new Stack(app, 'Nag');
  build(stack);
  checkWithNag(app, true);
  suppressFerryFindings(stack);
  return stack;
}

describe('cdk-nag AwsSolutionsChecks', () => {
  it('passes every stack of the example app (bin/ferry.ts with cdk.json)', () => {
    const cdkJson = JSON.parse(fs.readFileSync(path.join(PACKAGE, 'cdk.json'), 'utf8'));
    const app = new App({
      analyticsReporting: false,
      context: { ...cdkJson.context, 'ferry:codeDirectory': prebuiltFixture() },
    });
    const stacks = ferryApp(app, PACKAGE, true);
    const all = [stacks.hub, stacks.destination, ...stacks.forwarders, stacks.stackSet];
    assert.equal(all.length, 4);
    for (const stack of all) {
      console.log(nagResult(stack, stack.stackName));
    }
  });

  for (const [name, values] of Object.entries(HUB_SETS)) {
    it(`passes the hub with the ${name} parameter set`, () => {
      const props = { ...propsFrom(HUB_PARAMETERS, values), code: fixtureCode() } as FerryHubProps;
      console.log(nagResult(checked((s) => new FerryHub(s, 'Hub', props)), `hub ${name}`));
    });
  }
  for (const [name, values] of Object.entries(DESTINATION_SETS)) {
    it(`passes the destination with the ${name} parameter set`, () => {
      const props = propsFrom(DESTINATION_PARAMETERS, values) as any;
      console.log(nagResult(checked((s) => new FerryDestination(s, 'Destination', props)), `destination ${name}`));
    });
  }
  for (const [name, values] of Object.entries(FORWARDER_SETS)) {
    it(`passes the forwarder with the ${name} parameter set`, () => {
      const props = propsFrom(FORWARDER_PARAMETERS, values) as any;
      console.log(nagResult(checked((s) => new FerryForwarder(s, 'Forwarder', props)), `forwarder ${name}`));
    });
  }

  it('would fail without the suppressions (they are all needed somewhere)', () => {
    const app = new App({ analyticsReporting: false });
    const stack = new Stack(app, 'Bare');
    const values = HUB_SETS['lint-variants template.yaml'];
    new FerryHub(stack, 'Hub', { ...propsFrom(HUB_PARAMETERS, values), code: fixtureCode() } as FerryHubProps);
    new FerryForwarder(stack, 'Forwarder', { hubRegion: 'us-east-1' });
    checkWithNag(app);
    const found = new Set(Annotations.fromStack(stack).findError('*', NAG).map((e) => rule(e.entry.data)));
    for (const rule of allSuppressions()) {
      for (const s of rule.suppressions) {
        assert.ok(found.has(s.id), `suppression ${s.id} of ${rule.ids.join('/')} suppresses nothing`);
        assert.ok(s.reason.length >= 40, `${s.id}: reason`);
      }
    }
  });
});
