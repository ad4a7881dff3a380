"""The deploy rehearsal's deploy: docs/deploy.md's steps, in the guide's order, against one
moto server (AWS_ENDPOINT_URL) standing in for an AWS organization. Run by
crates/ferry-pipeline/tests/rehearsal.rs with aws-sam-cli's Python (samtranslator and
boto3), input as JSON on stdin, the report as JSON on stdout.

Input: {"hub": {"account", "region"}, "management": "<account>", "forwarderRegion",
"config": <ferry.json>, "configParameter": "/ferry/config", "hubParameters": {...},
"readerParameters": {...}, "destinationParameters": {...}, "organizationalUnit",
"destinationRegions": [...]}. The ECR-, IAM- and stack-related values are the guide's.

Where the rehearsal departs from the guide, and why:
- `make package` (cargo lambda build) is not run: the functions' code is a placeholder zip
  uploaded where `sam deploy` uploads the built artifact (an S3 bucket of the hub account).
  The rehearsal runs the library handlers in process instead of the binaries.
- `sam deploy` asks CloudFormation to apply the SAM transform; moto's CloudFormation has no
  transforms, so the template is transformed here with samtranslator, the library
  `sam` uses (infra/cdk/test/sam-transform.py), and created as a plain stack.
- Accounts are reached as the guide's operator would: `sts:AssumeRole` of
  OrganizationAccountAccessRole in the management account (moto keys state by the account
  of the credentials).

The report lists, for each stack, every resource of its template with its type and what
moto did with it: `created` (a physical resource), `not-created: condition` (the
template's Condition is false for these parameters) or `not-supported` (moto's
CloudFormation has no such resource type and skipped it).
"""

import importlib.util
import io
import json
import os
import sys
import zipfile

import boto3
import botocore.config
import botocore.exceptions
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFRA = os.path.join(ROOT, "infra")


def load_sam_transform():
    path = os.path.join(INFRA, "cdk", "test", "sam-transform.py")
    spec = importlib.util.spec_from_file_location("sam_transform", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def session(creds=None, region=None):
    kwargs = {"region_name": region}
    if creds:
        kwargs.update(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
    return boto3.session.Session(**kwargs)


def assume(account, region):
    sts = boto3.client("sts", region_name=region)
    out = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        RoleSessionName="ferry-rehearsal",
    )
    return out["Credentials"]


def params(values):
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def wait_complete(cfn, name):
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        raise SystemExit(f"stack {name}: {stack['StackStatus']}: {events[:5]}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def create_stack(cfn, name, template, values, capabilities):
    """CreateStack, then its outputs (moto creates a stack at once)."""
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=params(values),
        Capabilities=capabilities,
    )
    return wait_complete(cfn, name)


def load_template(name):
    with open(os.path.join(INFRA, name)) as f:
        return yaml.safe_load(f)


def condition_true(template, name, values):
    """Evaluates a Condition of `template` for the given parameter values (the small
    subset of intrinsics Ferry's templates use in conditions)."""

    def ev(node):
        if isinstance(node, dict) and len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                if v in values:
                    return values[v]
                p = template.get("Parameters", {}).get(v, {})
                return p.get("Default", "")
            if k == "Condition":
                return ev(template["Conditions"][v])
            if k == "Fn::Equals":
                a, b = ev(v[0]), ev(v[1])
                return str(a) == str(b)
            if k == "Fn::Not":
                return not ev(v[0])
            if k == "Fn::And":
                return all(ev(x) for x in v)
            if k == "Fn::Or":
                return any(ev(x) for x in v)
            if k == "Fn::Join":
                items = ev(v[1])
                if isinstance(items, str):
                    items = [] if items == "" else items.split(",")
                return v[0].join(str(ev(i)) for i in items)
        if isinstance(node, list):
            return [ev(x) for x in node]
        return node

    return bool(ev(template["Conditions"][name]))


def resource_table(template, values, cfn, stack_name):
    # moto lists what it created (some, e.g. an event bus or a Lambda permission, with an
    # empty physical id) and leaves out, with no logical id, what it could not parse.
    listed = {
        r.get("LogicalResourceId"): r.get("ResourceType")
        for r in cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    rows = []
    for logical, resource in sorted(template["Resources"].items()):
        if listed.get(logical) == resource["Type"]:
            status = "created"
        elif "Condition" in resource and not condition_true(
            template, resource["Condition"], values
        ):
            status = "not-created: condition"
        else:
            status = "not-supported"
        rows.append({"logical": logical, "type": resource["Type"], "status": status})
    return rows


def main():
    spec = json.load(sys.stdin)
    hub_account, hub_region = spec["hub"]["account"], spec["hub"]["region"]
    report = {"stacks": []}
    hub = session(region=hub_region)
    caller = hub.client("sts").get_caller_identity()["Account"]
    if caller != hub_account:
        raise SystemExit(f"the operator's credentials are of account {caller}, not the hub's")
    sam = load_sam_transform()

    def record(name, account, region, template, values, cfn, outputs):
        report["stacks"].append(
            {
                "name": name,
                "account": account,
                "region": region,
                "outputs": outputs,
                "resources": resource_table(template, values, cfn, name),
            }
        )

    # Section 3, "Keeping the configuration secret" (the config holds an externalId):
    # the SecureString the guide's `aws ssm put-parameter` creates.
    hub.client("ssm").put_parameter(
        Name=spec["configParameter"],
        Type="SecureString",
        Tier="Intelligent-Tiering",
        Value=json.dumps(spec["config"]),
        Overwrite=True,
    )

    # Sections 2 and 3: the built functions uploaded by sam deploy (a placeholder zip
    # here), the SAM template transformed, the hub stack created.
    bucket = f"ferry-artifacts-{hub_account}"
    s3 = hub.client("s3")
    s3.create_bucket(Bucket=bucket)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho placeholder: the rehearsal runs the handlers in process\n")
    s3.put_object(Bucket=bucket, Key="ferry/code.zip", Body=code.getvalue())
    hub_template = sam.transform(
        os.path.join(INFRA, "template.yaml"), f"s3://{bucket}/ferry/code.zip"
    )
    hub_values = dict(spec["hubParameters"])
    hub_values["ExistingConfigParameterName"] = spec["configParameter"]
    hub_values["ReplicationConfig"] = ""
    cfn = hub.client("cloudformation")
    caps = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    hub_outputs = create_stack(cfn, "ferry", hub_template, hub_values, caps)
    record("ferry", hub_account, hub_region, hub_template, hub_values, cfn, hub_outputs)

    # README step 3: the organization reader in the management account, trusting the
    # hub's three function roles.
    management = session(assume(spec["management"], hub_region), hub_region)
    reader_template = load_template("organization-reader.yaml")
    reader_values = dict(spec["readerParameters"])
    reader_values["HubRoleArns"] = hub_outputs["FunctionRoleArns"]
    mcfn = management.client("cloudformation")
    reader_outputs = create_stack(
        mcfn, "ferry-organization-reader", reader_template, reader_values, ["CAPABILITY_NAMED_IAM"]
    )
    record(
        "ferry-organization-reader",
        spec["management"],
        hub_region,
        reader_template,
        reader_values,
        mcfn,
        reader_outputs,
    )

    # Section 4: the destination StackSet over the OU, from the management account.
    dest_template = load_template("destination.yaml")
    dest_values = dict(spec["destinationParameters"])
    dest_values["HubReplicateRoleArn"] = hub_outputs["ReplicateRoleArn"]
    dest_values["HubReconcileRoleArn"] = hub_outputs["ReconcileRoleArn"]
    mcfn.create_stack_set(
        StackSetName="ferry-destination",
        TemplateBody=json.dumps(dest_template),
        PermissionModel="SERVICE_MANAGED",
        AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=params(dest_values),
    )
    mcfn.create_stack_instances(
        StackSetName="ferry-destination",
        DeploymentTargets={"OrganizationalUnitIds": [spec["organizationalUnit"]]},
        Regions=spec["destinationRegions"],
    )
    instances = mcfn.list_stack_instances(StackSetName="ferry-destination")["Summaries"]
    for instance in sorted(instances, key=lambda i: (i["Account"], i["Region"])):
        account, region = instance["Account"], instance["Region"]
        member = session(assume(account, region), region)
        # moto keeps a SERVICE_MANAGED instance's stack hidden (no DescribeStacks, no
        # ListStackResources in the member account): each resource is looked up where it
        # would be, by its name.
        rows = stack_set_rows(dest_template, dest_values, member, region)
        report["stacks"].append(
            {
                "name": "StackSet ferry-destination",
                "account": account,
                "region": region,
                "outputs": {},
                "resources": rows,
            }
        )

    # Section 5: the forwarder, in the hub account's extra source region.
    fwd_region = spec["forwarderRegion"]
    fwd = session(region=fwd_region)
    fwd_template = load_template("forwarder.yaml")
    fwd_values = {"HubRegion": hub_region, "HubAccountId": hub_account}
    fcfn = fwd.client("cloudformation")
    fwd_outputs = create_stack(
        fcfn, "ferry-forwarder", fwd_template, fwd_values, ["CAPABILITY_IAM"]
    )
    record("ferry-forwarder", hub_account, fwd_region, fwd_template, fwd_values, fcfn, fwd_outputs)

    json.dump(report, sys.stdout, indent=1, sort_keys=True)


def substitute(text, values):
    for k, v in values.items():
        text = text.replace("${" + k + "}", str(v))
    return text


def stack_set_rows(template, values, member, region):
    """The resource table of a hidden stack instance, from what exists in its account:
    an IAM role by its name; a repository creation template through ECR (moto's ECR has
    no such API at all: not-supported)."""
    subs = {
        k: v.get("Default", "") for k, v in template.get("Parameters", {}).items()
    }
    subs.update(values)
    subs["AWS::Region"] = region
    iam = member.client("iam")
    ecr = member.client("ecr", config=botocore.config.Config(retries={"max_attempts": 1}))
    rows = []
    for logical, resource in sorted(template["Resources"].items()):
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if "Condition" in resource and not condition_true(template, resource["Condition"], values):
            status = "not-created: condition"
        elif kind == "AWS::IAM::Role":
            name = substitute(props["RoleName"]["Fn::Sub"], subs)
            try:
                iam.get_role(RoleName=name)
                status = "created"
            except iam.exceptions.NoSuchEntityException:
                status = "not-supported"
        elif kind == "AWS::ECR::RepositoryCreationTemplate":
            try:
                found = ecr.describe_repository_creation_templates()
                prefixes = [t["prefix"] for t in found.get("repositoryCreationTemplates", [])]
                status = "created" if values.get("RepositoryPrefix") in prefixes else "not-supported"
            except botocore.exceptions.ClientError:
                status = "not-supported"
        else:
            status = "not-observed"
        rows.append({"logical": logical, "type": kind, "status": status})
    return rows


if __name__ == "__main__":
    main()
