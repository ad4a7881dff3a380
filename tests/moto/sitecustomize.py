"""Loaded by every `moto_server` the test harness and the bench start (they put this
directory on PYTHONPATH; Python imports `sitecustomize` at startup).

moto 5's EventBridge routes each event to each rule target through
`EventTemplateParser.parse`, which calls `jsonpath_ng.ext.parse` for every input path, and
jsonpath_ng builds a new PLY LALR parser, tables and all, on every call: ~100-300 ms of
CPU per event and target on this 2-core machine (py-spy: three quarters of moto's CPU in
the pipeline demo, bench/results/findings.md). That is moto's cost, not EventBridge's,
and it starves every other process. A parsed path is an immutable expression tree whose
`find()` reads only its argument, so the same object can serve every event: this caches
it per path string. Nothing else of moto changes.
"""

import functools

try:
    import jsonpath_ng.ext as _jsonpath_ext
except ImportError:  # no jsonpath_ng: nothing to speed up
    pass
else:
    _jsonpath_ext.parse = functools.lru_cache(maxsize=1024)(_jsonpath_ext.parse)
