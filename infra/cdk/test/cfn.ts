/**
 * CloudFormation templates as comparable data: conditions decided for given parameter
 * values, every intrinsic function turned into text (a reference to a resource becomes
 * `${Name}` / `${Name.Attr}`, a pseudo parameter stays `${AWS::Region}`, a parameter
 * becomes its value), JSON documents held in strings parsed, scalars as strings. Two
 * templates that deploy the same resources give equal data, whichever way they were
 * written (Fn::Sub or Fn::Join, YAML text or JSON.stringify, logical ID with or without
 * the CDK path and hash).
 */
import * as fs from 'node:fs';
import { parse } from 'yaml';

/** A template (the parsed JSON or YAML). */
export type Template = Record<string, any>;

/** Parameter values as on the command line (lists comma-separated). */
export type ParameterValues = Record<string, string>;

const NO_VALUE = Symbol('AWS::NoValue');

/** How a template's references are read. */
export interface Reader {
  /** Name of a resource (or output) in the comparison, from its logical ID. */
  readonly name: (logicalId: string) => string;
  /** Parameter values (with the template's defaults filled in). */
  readonly params: Record<string, string | string[]>;
  readonly mappings: Record<string, any>;
  conditions: Record<string, boolean>;
}

/** Reads a YAML or JSON file. */
export function readTemplate(file: string): Template {
  return parse(fs.readFileSync(file, 'utf8')) as Template;
}

/** A reader of `template` with `values` for its parameters (the rest take their Default). */
export function reader(template: Template, values: ParameterValues, name: (id: string) => string): Reader {
  const params: Record<string, string | string[]> = {};
  for (const [key, spec] of Object.entries<any>(template.Parameters ?? {})) {
    const raw = key in values ? values[key] : spec.Default;
    if (raw === undefined) {
      continue;
    }
    const text = String(raw);
    params[key] = spec.Type === 'CommaDelimitedList' ? (text === '' ? [''] : text.split(',')) : text;
  }
  for (const key of Object.keys(values)) {
    if (!(key in params)) {
      throw new Error(`no parameter ${key} in the template`);
    }
  }
  const r: Reader = { name, params, mappings: template.Mappings ?? {}, conditions: {} };
  for (const [key, expr] of Object.entries<any>(template.Conditions ?? {})) {
    r.conditions[key] = condition(expr, r);
  }
  return r;
}

function condition(expr: any, r: Reader): boolean {
  const [fn, args] = Object.entries<any>(expr)[0];
  switch (fn) {
    case 'Fn::Equals':
      return text(args[0], r) === text(args[1], r);
    case 'Fn::Not':
      return !condition(args[0], r);
    case 'Fn::And':
      return args.every((a: any) => condition(a, r));
    case 'Fn::Or':
      return args.some((a: any) => condition(a, r));
    case 'Condition':
      return r.conditions[args];
    default:
      throw new Error(`condition function ${fn} not handled`);
  }
}

function text(value: any, r: Reader): string {
  const v = canon(value, r);
  if (typeof v !== 'string') {
    throw new Error(`expected text, got ${JSON.stringify(v)}`);
  }
  return v;
}

function ref(target: string, r: Reader): any {
  if (target === 'AWS::NoValue') {
    return NO_VALUE;
  }
  if (target.startsWith('AWS::')) {
    return `\${${target}}`;
  }
  if (target in r.params) {
    return r.params[target];
  }
  return `\${${r.name(target)}}`;
}

function getAtt(args: any, r: Reader): string {
  const [id, ...attr] = typeof args === 'string' ? args.split('.') : args;
  return `\${${r.name(id)}.${attr.join('.')}}`;
}

function sub(args: any, r: Reader): string {
  const [body, vars] = typeof args === 'string' ? [args, {}] : args;
  return (body as string).replace(/\$\{(!?)([^}]+)\}/g, (_m: string, bang: string, expr: string) => {
    if (bang === '!') {
      return `\${${expr}}`;
    }
    if (expr in vars) {
      return text(vars[expr], r);
    }
    const [head, ...attr] = expr.split('.');
    if (attr.length > 0) {
      return getAtt([head, ...attr], r);
    }
    const value = ref(head, r);
    if (typeof value !== 'string') {
      throw new Error(`Fn::Sub of a list parameter ${head}`);
    }
    return value;
  });
}

/** A value of a template as comparable data (see the module documentation). */
export function canon(value: any, r: Reader): any {
  if (Array.isArray(value)) {
    return value.map((v) => canon(v, r)).filter((v) => v !== NO_VALUE);
  }
  if (value === null || typeof value !== 'object') {
    return typeof value === 'string' ? parsedJson(value, r) : String(value);
  }
  const keys = Object.keys(value);
  if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) {
    const args = value[keys[0]];
    switch (keys[0]) {
      case 'Ref': {
        const v = ref(args, r);
        return typeof v === 'string' ? parsedJson(v, r) : v;
      }
      case 'Fn::GetAtt':
        return getAtt(args, r);
      case 'Fn::Sub':
        return parsedJson(sub(args, r), r);
      case 'Fn::Join': {
        const parts = canon(args[1], r);
        return parsedJson(
          parts.map((p: any) => (typeof p === 'string' ? p : JSON.stringify(p))).join(args[0]),
          r,
        );
      }
      case 'Fn::If':
        return canon(r.conditions[args[0]] ? args[1] : args[2], r);
      case 'Fn::FindInMap':
        return canon(r.mappings[text(args[0], r)][text(args[1], r)][text(args[2], r)], r);
      default:
        throw new Error(`intrinsic ${keys[0]} not handled`);
    }
  }
  const out: Record<string, any> = {};
  for (const key of keys) {
    const v = canon(value[key], r);
    const empty = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0;
    if (v !== NO_VALUE && !empty) {
      out[key] = v;
    }
  }
  return out;
}

/** A string holding a JSON object (a dashboard, a lifecycle policy) as data. */
function parsedJson(s: string, r: Reader): any {
  if (!s.trimStart().startsWith('{')) {
    return s;
  }
  try {
    return canon(JSON.parse(s), { ...r, params: {}, conditions: r.conditions });
  } catch {
    return s;
  }
}

/** One resource as compared. */
export interface Resource {
  readonly Type: string;
  readonly Properties?: any;
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
  /** checkov waivers (Metadata.checkov), which must be equal too. */
  readonly checkov?: any;
}

/** Properties left out of the comparison, by resource type, with the reason. */
export const IGNORED: Record<string, Record<string, string>> = {
  'AWS::Lambda::Function': {
    Code: 'sam build uploads CodeUri; CDK uploads an asset (the same bootstrap binaries)',
    Tags: 'SAM tags its functions lambda:createdBy=SAM',
  },
};

/** The resources of a template whose condition holds, by name, as comparable data. */
export function resources(template: Template, r: Reader, skipTypes: string[] = []): Record<string, Resource> {
  const out: Record<string, Resource> = {};
  for (const [id, res] of Object.entries<any>(template.Resources ?? {})) {
    if (skipTypes.includes(res.Type) || (res.Condition !== undefined && !r.conditions[res.Condition])) {
      continue;
    }
    const properties = { ...(res.Properties ?? {}) };
    for (const key of Object.keys(IGNORED[res.Type] ?? {})) {
      delete properties[key];
    }
    const name = r.name(id);
    if (name in out) {
      throw new Error(`two resources named ${name}`);
    }
    out[name] = {
      Type: res.Type,
      Properties: canon(properties, r),
      DeletionPolicy: res.DeletionPolicy,
      UpdateReplacePolicy: res.UpdateReplacePolicy,
      checkov: res.Metadata?.checkov === undefined ? undefined : canon(res.Metadata.checkov, r),
    };
  }
  return out;
}

/** The outputs of a template whose condition holds: name -> [value, description]. */
export function outputs(template: Template, r: Reader): Record<string, [any, any]> {
  const out: Record<string, [any, any]> = {};
  for (const [id, o] of Object.entries<any>(template.Outputs ?? {})) {
    if (o.Condition === undefined || r.conditions[o.Condition]) {
      out[r.name(id)] = [canon(o.Value, r), o.Description === undefined ? undefined : canon(o.Description, r)];
    }
  }
  return out;
}

/** Logical IDs of a construct's children: `<prefix><Name><8 hex digits>` -> Name. */
export function cdkName(prefix: string): (id: string) => string {
  const pattern = new RegExp(`^${prefix}(.+)[0-9A-F]{8}$`);
  return (id: string) => {
    const m = pattern.exec(id);
    return m === null ? id : m[1];
  };
}
