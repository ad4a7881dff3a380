/**
 * Synth-time checks of construct props: the CDK counterpart of the SAM templates'
 * Parameters (AllowedPattern, AllowedValues, MinValue/MaxValue) and Rules. A failed
 * check throws, so `cdk synth` stops before a template CloudFormation would refuse.
 */

/** Throws `<construct>: <message>` unless `ok`. */
export function require_(construct: string, ok: boolean, message: string): void {
  if (!ok) {
    throw new Error(`${construct}: ${message}`);
  }
}

/** Every value matches `pattern` (the SAM parameter's AllowedPattern). */
export function matches(construct: string, name: string, values: readonly string[] | undefined, pattern: RegExp): void {
  for (const value of values ?? []) {
    require_(construct, pattern.test(value), `${name} '${value}' does not match ${pattern}`);
  }
}

/** `value` is an integer in [min, max] (MinValue/MaxValue). */
export function inRange(construct: string, name: string, value: number, min: number, max: number): void {
  require_(
    construct,
    Number.isInteger(value) && value >= min && value <= max,
    `${name} must be an integer from ${min} to ${max}, not ${value}`,
  );
}

/** `value` is one of `allowed` (AllowedValues). */
export function oneOf<T>(construct: string, name: string, value: T, allowed: readonly T[]): void {
  require_(construct, allowed.includes(value), `${name} must be one of ${allowed.join(', ')}, not ${String(value)}`);
}

/** ARN patterns of the SAM templates' parameters, shared by the constructs. */
export const PATTERNS = {
  ecrRepositoryArn: /^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository\/.+$/,
  kmsKeyArn: /^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/.+$/,
  policyArn: /^arn:aws[a-z-]*:iam::[0-9]{12}:policy\/.+$/,
  roleArn: /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/.+$/,
  organizationRoleArn: /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@/-]+$/,
  queueSenderArn: /^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role\/[^*].*|user\/[^*].*)$/,
  parameterName: /^\/[a-zA-Z0-9_.\-/]{1,1000}$/,
  email: /^[^@\s]+@[^@\s]+\.[^@\s]+$/,
  schedule: /^(rate|cron)\(.+\)$/,
  accountId: /^[0-9]{12}$/,
  region: /^[a-z]{2}(-[a-z]+)+-[0-9]$/,
  snsTopicArn: /^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$/,
} as const;

/** An optional value (undefined: not given) matches `pattern`. */
export function matchesIf(construct: string, name: string, value: string | undefined, pattern: RegExp): void {
  matches(construct, name, value === undefined ? undefined : [value], pattern);
}
