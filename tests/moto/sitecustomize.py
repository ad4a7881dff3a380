"""Loaded by every `moto_server` the test harness and the bench start (they put this
directory on PYTHONPATH; Python imports `sitecustomize` at startup).

moto 5's EventBridge routes each event to each rule target through
`EventTemplateParser.parse`, which calls `jsonpath_ng.ext.parse` for every input path, and
jsonpath_ng builds a new PLY LALR parser, tables and all, on every call: ~100-300 ms of
CPU per event and target on this 2-core machine (py-spy: three quarters of moto's CPU in
the pipeline demo, bench/results/findings.md). That is moto's cost, not EventBridge's,
and it starves every other process. A parsed path is an immutable expression tree whose
`find()` reads only its argument, so the same object can serve every event: this caches
it per path string.

It also answers DescribePullThroughCacheRules, GetSigningConfiguration and
GetAccountSetting, which moto lacks, and names the FIFO queues its CloudFormation creates
as CloudFormation does (see below).
"""

import functools

try:
    import jsonpath_ng.ext as _jsonpath_ext
except ImportError:  # no jsonpath_ng: nothing to speed up
    pass
else:
    _jsonpath_ext.parse = functools.lru_cache(maxsize=1024)(_jsonpath_ext.parse)

# moto 5.2's ECR has no DescribePullThroughCacheRules (it answers 500, which the AWS SDK
# retries with backoff). Stand-in: answer as a registry with no
# pull-through cache rule, a new registry's real state. The rule itself (cache
# repositories are sources only when a rule names them) is tested with `aws-smithy-mocks`
# answers in crates/ferry/src/ecr and with a stand-in source in crates/ferry-pipeline.
try:
    import json as _json

    from moto.core.exceptions import JsonRESTError as _JsonRESTError
    from moto.ecr.responses import ECRResponse as _ECRResponse
except ImportError:  # no moto ECR: nothing to add
    pass
else:
    if not hasattr(_ECRResponse, "describe_pull_through_cache_rules"):

        def _describe_pull_through_cache_rules(self):
            return _json.dumps({"pullThroughCacheRules": []})

        _ECRResponse.describe_pull_through_cache_rules = _describe_pull_through_cache_rules

    # Nor GetSigningConfiguration (500, retried with backoff: ~1.5 s per destination
    # registry, 150 s for a plan over 102 organization destinations). Stand-in: answer as
    # a registry without managed signing, a new registry's real state, with the error
    # code ECR documents for it (SigningConfigurationNotFoundException,
    # https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetSigningConfiguration.html).
    # Registries with signing rules are tested with `aws-smithy-mocks` answers
    # (crates/ferry/src/ecr/signing_tests.rs, crates/ferry-pipeline/tests/signing.rs).
    if not hasattr(_ECRResponse, "get_signing_configuration"):
        def _get_signing_configuration(self):
            raise _JsonRESTError(
                "SigningConfigurationNotFoundException",
                "The registry does not have a signing configuration.",
            )

        _ECRResponse.get_signing_configuration = _get_signing_configuration

    # Nor GetAccountSetting (500, retried with backoff for every ECR destination whose
    # account Ferry's credentials belong to). Stand-in: the answer to a caller without
    # `ecr:GetAccountSetting`, AccessDeniedException, which Ferry reads as "BLOB_MOUNTING
    # unknown" and so tries mounts, as it did on moto's 500 after the retries. The
    # setting's ENABLED / DISABLED answers are tested with `aws-smithy-mocks`
    # (crates/ferry/src/ecr/tests.rs).
    if not hasattr(_ECRResponse, "get_account_setting"):

        def _get_account_setting(self):
            raise _JsonRESTError(
                "AccessDeniedException",
                "not authorized to perform: ecr:GetAccountSetting (moto stand-in)",
            )

        _ECRResponse.get_account_setting = _get_account_setting

# moto 5.2's CloudFormation names a queue without QueueName after its logical id, and then
# refuses a FifoQueue whose name lacks ".fifo"; CloudFormation gives a FIFO queue's
# generated name the ".fifo" suffix. Used by the deploy rehearsal
# (crates/ferry-pipeline/tests/rehearsal.rs), whose hub template has two such queues.
try:
    from moto.sqs.models import Queue as _Queue
except ImportError:  # no moto SQS: nothing to fix
    pass
else:
    _queue_from_cfn = _Queue.create_from_cloudformation_json.__func__

    def _fifo_named_from_cfn(cls, resource_name, cloudformation_json, *args, **kwargs):
        props = cloudformation_json.get("Properties", {})
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        if fifo and not props.get("QueueName") and not str(resource_name).endswith(".fifo"):
            resource_name = str(resource_name)[:75] + ".fifo"
        return _queue_from_cfn(cls, resource_name, cloudformation_json, *args, **kwargs)

    _Queue.create_from_cloudformation_json = classmethod(_fifo_named_from_cfn)

# moto 5.2's CloudFormation resolves a Number parameter to an int, and Fn::FindInMap then
# looks the int up in a mapping whose keys are strings (KeyError: the hub's
# ReplicateTimeouts mapping, keyed by ReplicateTimeout); CloudFormation's Ref of a
# parameter is a string. The keys are looked up as strings here.
try:
    from moto.cloudformation import parsing as _cfn_parsing
except ImportError:  # no moto CloudFormation: nothing to fix
    pass
else:
    _clean_json = _cfn_parsing.clean_json

    def _clean_json_string_map_keys(resource_json, resources_map):
        if isinstance(resource_json, dict) and "Fn::FindInMap" in resource_json:
            name, *path = resource_json["Fn::FindInMap"]
            keys = []
            for key in path:
                key = _clean_json_string_map_keys(key, resources_map)
                if isinstance(key, (int, float)) and not isinstance(key, bool):
                    key = str(key)
                keys.append(key)
            resource_json = {"Fn::FindInMap": [name, *keys]}
        return _clean_json(resource_json, resources_map)

    _cfn_parsing.clean_json = _clean_json_string_map_keys

# moto 5.2's EventBus has no physical resource id, so its CloudFormation answers a Ref of an
# AWS::Events::EventBus with the Python object (the hub's FERRY_EVENT_BUS_NAME then makes
# GetFunctionConfiguration fail to serialize); CloudFormation's Ref of an event bus is its
# name.
try:
    from moto.events.models import EventBus as _EventBus
except ImportError:  # no moto EventBridge: nothing to fix
    pass
else:
    if not hasattr(_EventBus, "physical_resource_id"):
        _EventBus.physical_resource_id = property(lambda self: self.name)
