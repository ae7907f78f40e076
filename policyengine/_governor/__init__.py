"""The traffic governor: state shared by the callers of one client.

_keys       where traffic goes (host, credential fingerprint, model)
_ratelimit  the rate-limit budget servers report in headers
_limiter    pace sends by that budget
_breaker    one probe at a time for a failing (or new) key
_budget     retries may add only a fraction of the traffic
_sticky     an exhausted quota or a bad key fails at once for a while
_signals    wake held callers, threads and asyncio tasks alike
_store      key states, bounded, in this process
_governor   admit before a send, settle after the answer
"""

from ._governor import Admission, Deny, Go, Governor, GovernorEvent, Hold, Ticket
from ._keys import Destination, TrafficKey, credential_fingerprint

__all__ = [
    "Admission",
    "Deny",
    "Destination",
    "Go",
    "Governor",
    "GovernorEvent",
    "Hold",
    "Ticket",
    "TrafficKey",
    "credential_fingerprint",
]
