"""``python -m memo_redis``: the ``memo-redis`` command (see :mod:`memo_redis.cli`)."""

from memo_redis.cli import main

raise SystemExit(main())
