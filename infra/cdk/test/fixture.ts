/**
 * Shared test helpers: a prebuilt-code fixture (a directory with a tiny `bootstrap` file
 * per binary, so no test runs a Rust build), repository paths, synthesized stacks.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Construct } from 'constructs';
import { FerryCode } from '../lib/code';

/** The repository root (infra/cdk/../..), from test/ or dist/test/. */
export const REPO = (function find(dir: string): string {
  return fs.existsSync(path.join(dir, 'Cargo.toml')) && fs.existsSync(path.join(dir, 'infra'))
    ? dir
    : find(path.dirname(dir));
})(__dirname);

/** infra/cdk. */
export const PACKAGE = path.join(REPO, 'infra', 'cdk');

let fixture: string | undefined;

/** A directory `<dir>/<binary>/bootstrap` for the three binaries (made once per process). */
export function prebuiltFixture(): string {
  if (fixture === undefined) {
    fixture = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cdk-fixture-'));
    for (const binary of ['dispatch', 'replicate', 'reconcile']) {
      fs.mkdirSync(path.join(fixture, binary));
      fs.writeFileSync(path.join(fixture, binary, 'bootstrap'), '#!/bin/sh\necho test fixture\n', { mode: 0o755 });
    }
  }
  return fixture;
}

/** Prebuilt code from the fixture. */
export function fixtureCode(): FerryCode {
  return { kind: 'prebuilt', directory: prebuiltFixture() };
}

/** A stack (in a fresh app without analytics) built by `build`, and its template. */
export function synth(build: (scope: Construct) => void, env?: { account: string; region: string }): {
  stack: Stack;
  template: Template;
} {
  const app = new App({ analyticsReporting: false });
  const stack = new Stack(app, 'Test', { env });
  build(stack);
  return { stack, template: Template.fromStack(stack) };
}
