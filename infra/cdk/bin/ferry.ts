#!/usr/bin/env node
/**
 * Example app: a Ferry hub, a destination, a forwarder and a destination StackSet over an
 * OU, from the context of cdk.json (placeholders; override with -c key=value). Synthesizes
 * offline with no AWS account: `npx cdk synth`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { ferryApp } from '../lib/app';

/** The directory of cdk.json (infra/cdk), from bin/ or dist/bin/. */
function packageRoot(dir: string): string {
  return fs.existsSync(path.join(dir, 'cdk.json')) ? dir : packageRoot(path.dirname(dir));
}

const app = new App();
ferryApp(app, packageRoot(__dirname));
app.synth();
