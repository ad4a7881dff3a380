/**
 * The replication configuration, validated at synth time against the workspace's JSON
 * Schema (schema/ferry-config.schema.json, the schema `ferry validate` documents).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';

/** The schema file, relative to the repository root. */
export const SCHEMA_FILE = path.join('schema', 'ferry-config.schema.json');

/**
 * The repository root holding `schema/ferry-config.schema.json`: the first ancestor of
 * this file's directory that has it (lib/ in a checkout, dist/lib/ once compiled).
 */
export function schemaPath(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    const candidate = path.join(dir, SCHEMA_FILE);
    if (fs.existsSync(candidate)) {
      return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`ferry config: ${SCHEMA_FILE} not found above ${start}`);
    }
    dir = parent;
  }
}

const validators = new Map<string, (value: unknown) => string[]>();

function validatorFor(file: string): (value: unknown) => string[] {
  let validator = validators.get(file);
  if (validator === undefined) {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(fs.readFileSync(file, 'utf8')));
    validator = (value: unknown) =>
      validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    validators.set(file, validator);
  }
  return validator;
}

/**
 * Checks `config` against the schema; throws with every schema error when it does not
 * conform. Returns the configuration as the compact JSON text the SSM parameter holds.
 */
export function validateConfig(config: unknown, schemaFile: string = schemaPath()): string {
  const errors = validatorFor(schemaFile)(config);
  if (errors.length > 0) {
    throw new Error(`ferry config does not match ${SCHEMA_FILE}:\n  ${errors.join('\n  ')}`);
  }
  return JSON.stringify(config);
}

/** Reads a configuration file (JSON) and validates it (see validateConfig). */
export function loadConfigFile(file: string, schemaFile?: string): unknown {
  const config: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  validateConfig(config, schemaFile);
  return config;
}
