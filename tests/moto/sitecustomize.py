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

It also answers DescribePullThroughCacheRules, which moto lacks (see below).
"""

import functools

try:
    import jsonpath_ng.ext as _jsonpath_ext
except ImportError:  # no jsonpath_ng: nothing to speed up
    pass
else:
    _jsonpath_ext.parse = functools.lru_cache(maxsize=1024)(_jsonpath_ext.parse)

# moto 5.2's ECR has no DescribePullThroughCacheRules (it answers 500, which the AWS SDK
# retries with backoff). Stand-in, the only one here: answer as a registry with no
# pull-through cache rule, a new registry's real state. The rule itself (cache
# repositories are sources only when a rule names them) is tested with `aws-smithy-mocks`
# answers in crates/ferry/src/ecr and with a stand-in source in crates/ferry-pipeline.
try:
    import json as _json

    from moto.ecr.responses import ECRResponse as _ECRResponse
except ImportError:  # no moto ECR: nothing to add
    pass
else:
    if not hasattr(_ECRResponse, "describe_pull_through_cache_rules"):

        def _describe_pull_through_cache_rules(self):
            return _json.dumps({"pullThroughCacheRules": []})

        _ECRResponse.describe_pull_through_cache_rules = _describe_pull_through_cache_rules
