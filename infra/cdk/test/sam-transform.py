"""SAM transform of a template, offline: reads YAML (argv[1]), writes the CloudFormation JSON.

Used by test/parity.test.ts, and imported by tests/rehearsal/deploy.py (`transform`, with
the code's S3 location that deploy uploaded). samtranslator is the library `sam` itself uses (aws-sam-cli's
virtualenv); no AWS call: the managed policy loader is never consulted (every role of the
hub is explicit) and the partition comes from the region set here.
"""
import json
import os
import sys

import boto3  # noqa: F401  (samtranslator imports it; no client is created)
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator


class NoManagedPolicies:
    def load(self):
        raise SystemExit("sam-transform: the template asked for managed policy names")


def transform(path, code_uri="s3://ferry-parity/code.zip"):
    """The CloudFormation template of the SAM template at `path`, every function's code at
    `code_uri`."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path) as f:
        template = yaml.safe_load(f)
    # A local CodeUri is sam build's business; the transform wants an S3 location.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    translator = Translator(managed_policy_map=None, sam_parser=Parser())
    return translator.translate(sam_template=template, parameter_values={})


if __name__ == "__main__":
    json.dump(transform(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
