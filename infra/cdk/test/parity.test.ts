/**
 * PARITY: the constructs synthesize what the SAM templates deploy. For each parameter set
 * (the "all features" sets of infra/lint-variants.yaml, a minimal set of each, a tuned hub
 * set), the template (the hub after the real SAM transform, samtranslator from aws-sam-cli) with
 * its conditions decided, and the construct with the corresponding props, must have
 *   - the same resources: names (logical IDs, the CDK path and hash removed), types, count;
 *   - per resource, equal Properties, DeletionPolicy, UpdateReplacePolicy and checkov
 *     waivers; this includes every IAM statement (Sid, actions, resources, conditions) of
 *     every role and policy, the event patterns and targets, every function's
 *     environment variables, the queues, alarms and dashboard. Only the function Code and
 *     SAM's own tag are left out (cfn.ts IGNORED, with the reasons);
 *   - the same outputs (values and descriptions);
 * and every template parameter must map to a prop (parity-map.ts).
 * A change to a template or a construct that is not made to the other fails here.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Construct } from 'constructs';
import { FerryDestination } from '../lib/destination';
import { FerryForwarder } from '../lib/forwarder';
import { FerryHub } from '../lib/hub';
import { FerryHubProps } from '../lib/hub-props';
import { cdkName, outputs, ParameterValues, reader, readTemplate, resources, Template } from './cfn';
import { fixtureCode, PACKAGE, REPO, synth } from './fixture';
import {
  DESTINATION_PARAMETERS,
  DESTINATION_SETS,
  FORWARDER_PARAMETERS,
  FORWARDER_SETS,
  HUB_PARAMETERS,
  HUB_SETS,
  ParameterMap,
  propsFrom,
} from './parity-map';

const SAM_PYTHON = process.env.FERRY_SAM_PYTHON ?? '/opt/venv-sam/bin/python';

/** The hub template after the SAM transform (samtranslator, offline). */
function samTransformed(file: string): Template {
  assert.ok(fs.existsSync(SAM_PYTHON), `${SAM_PYTHON} missing: run scripts/setup (aws-sam-cli) or set FERRY_SAM_PYTHON`);
  const out = execFileSync(SAM_PYTHON, [path.join(PACKAGE, 'test', 'sam-transform.py'), file], {
    encoding: 'utf8',
    env: { ...process.env, AWS_DEFAULT_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  return JSON.parse(out) as Template;
}

/** Asserts that the two sides are equal, resource by resource, naming the first difference. */
export function assertParity(sam: Template, values: ParameterValues, cdk: Template, prefix: string): void {
  const samReader = reader(sam, values, (id) => id);
  const cdkReader = reader(cdk, {}, cdkName(prefix));
  const left = resources(sam, samReader);
  const right = resources(cdk, cdkReader, ['AWS::CDK::Metadata']);
  assert.deepEqual(
    Object.keys(right)
      .map((k) => `${k} ${right[k].Type}`)
      .sort(),
    Object.keys(left)
      .map((k) => `${k} ${left[k].Type}`)
      .sort(),
    'resource names and types (CDK first, SAM second)',
  );
  for (const name of Object.keys(left)) {
    assert.deepEqual(right[name], left[name], `resource ${name} (CDK first, SAM second)`);
  }
  const samOutputs = outputs(sam, samReader);
  const cdkOutputs = outputs(cdk, cdkReader);
  assert.deepEqual(cdkOutputs, samOutputs, 'outputs (CDK first, SAM second)');
}

function assertMapped<P>(template: Template, map: ParameterMap<P>): void {
  assert.deepEqual(Object.keys(map).sort(), Object.keys(template.Parameters).sort(), 'template parameters vs props');
}

describe('parity of FerryHub with infra/template.yaml (after the SAM transform)', () => {
  const file = path.join(REPO, 'infra', 'template.yaml');
  const sam = samTransformed(file);
  it('maps every template parameter to a prop', () => assertMapped(readTemplate(file), HUB_PARAMETERS));
  for (const [name, values] of Object.entries(HUB_SETS)) {
    it(`equals the template with the ${name} parameter set`, () => {
      const props = { ...propsFrom(HUB_PARAMETERS, values), code: fixtureCode() } as FerryHubProps;
      const { template } = synth((s) => new FerryHub(s, 'Hub', props));
      assertParity(sam, values, template.toJSON(), 'Hub');
    });
  }
});

/** The parity suite of a plain (non-SAM) template and its construct. */
function describeParity<P>(
  file: string,
  map: ParameterMap<P>,
  sets: Record<string, ParameterValues>,
  id: string,
  build: (scope: Construct, id: string, props: P) => void,
): void {
  describe(`parity of Ferry${id} with infra/${file}`, () => {
    const sam = readTemplate(path.join(REPO, 'infra', file));
    it('maps every template parameter to a prop', () => assertMapped(sam, map));
    for (const [name, values] of Object.entries(sets)) {
      it(`equals the template with the ${name} parameter set`, () => {
        const props = propsFrom(map, values) as P;
        const { template } = synth((s) => build(s, id, props));
        assertParity(sam, values, template.toJSON(), id);
      });
    }
  });
}

describeParity('destination.yaml', DESTINATION_PARAMETERS, DESTINATION_SETS, 'Destination', (s, id, p) => {
  new FerryDestination(s, id, p);
});
describeParity('forwarder.yaml', FORWARDER_PARAMETERS, FORWARDER_SETS, 'Forwarder', (s, id, p) => {
  new FerryForwarder(s, id, p);
});
