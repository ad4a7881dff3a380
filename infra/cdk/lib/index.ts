/** Ferry's AWS CDK constructs: the CDK way to deploy what infra/*.yaml deploy with SAM. */
export * from './code';
export * from './config';
export * from './hub-props';
export * from './hub';
export * from './destination';
export * from './forwarder';
export * from './nag';
export * from './stackset';
