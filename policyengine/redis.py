"""Redis: the governor's state shared by every process pointed at one Redis
(the ``redis`` extra).

    import policyengine as pe
    from policyengine.redis import RedisStore

    governor = pe.Governor(pe.load_policy(), store=RedisStore("redis://127.0.0.1:6379/0"))

or, with no code change, ``POLICYENGINE_REDIS_URL=redis://...`` (or
``[governor] redis_url`` in the policy): every governor of the process then
shares its limiter, retry budget, circuit and sticky failures through that
Redis. See ``RedisStore`` for how (one Lua script per step, the server's
clock, hash-tagged keys with a TTL) and how a failing Redis is survived.
"""

from ._governor._redisstore import (
    DEFAULT_TIMEOUT,
    MAX_BATCH,
    MAX_PENDING,
    POLL_INTERVAL,
    RETRY_AFTER,
    RedisStore,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BATCH",
    "MAX_PENDING",
    "POLL_INTERVAL",
    "RETRY_AFTER",
    "RedisStore",
]
