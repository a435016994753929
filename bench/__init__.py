"""memo_redis benchmark suite: ``python -m bench.run`` (see bench/README.md).

Never imported by the library or the tests; performance is checked here, not in timed unit tests.
"""
