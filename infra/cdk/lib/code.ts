/**
 * Where the three functions' code comes from: prebuilt `bootstrap` files (what
 * `make package` / `cargo lambda build` writes), or a cargo-lambda build from source at
 * synth time (cargo-lambda-cdk, the bundling its RustFunction uses).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Bundling } from 'cargo-lambda-cdk/lib/bundling';

/** Lambda architecture of the functions; must match the build. */
export type FerryArchitecture = 'arm64' | 'x86_64';

/** The binaries of the workspace's `functions/` crates. */
export type FerryBinary = 'dispatch' | 'replicate' | 'reconcile';

/**
 * Prebuilt code: a directory with one entry per binary, `<dir>/<binary>/bootstrap` or
 * `<dir>/<binary>/bootstrap.zip` (cargo lambda's layout under target/lambda).
 */
export interface PrebuiltCode {
  /** Always `prebuilt`. */
  readonly kind: 'prebuilt';
  /** The directory, e.g. `<repo>/target/lambda`. */
  readonly directory: string;
}

/**
 * Built from source with cargo lambda when the stack is synthesized (needs a Rust
 * toolchain and cargo-lambda, or Docker; a release build takes minutes).
 */
export interface SourceCode {
  /** Always `source`. */
  readonly kind: 'source';
  /** The workspace's Cargo.toml (or its directory). */
  readonly manifestPath: string;
}

/** Function code: prebuilt bootstrap files or a build from source. */
export type FerryCode = PrebuiltCode | SourceCode;

/** The code of one binary, as a Lambda asset. */
export function binaryCode(code: FerryCode, binary: FerryBinary, architecture: FerryArchitecture): lambda.Code {
  if (code.kind === 'source') {
    return Bundling.bundle({
      manifestPath: code.manifestPath,
      binaryName: binary,
      architecture: architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
    });
  }
  const dir = path.join(code.directory, binary);
  const zip = path.join(dir, 'bootstrap.zip');
  if (fs.existsSync(zip)) {
    return lambda.Code.fromAsset(zip);
  }
  if (!fs.existsSync(path.join(dir, 'bootstrap'))) {
    throw new Error(`ferry code: neither ${zip} nor ${path.join(dir, 'bootstrap')} exists (run make package)`);
  }
  return lambda.Code.fromAsset(dir);
}
