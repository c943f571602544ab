"""Fixed-window counters in the Django cache: the sign-in throttle (mappings/login_throttle.py) and the token
endpoint's rate limit (mappings/security/views.py) count with them.

A window starts with its first count and lasts `window_seconds`; past `limit` counts in it, `retry_after` says how
many seconds remain. The state is one cache entry per key (the default cache: files under ./var shared by one
machine's processes, or Redis across machines), whose timeout is the window's end. Concurrent counts from several
workers may lose one between a get and a set: a limit is a brake on guessing and flooding, not an exact number.
Keys are hashed, so no username, client id or address ends up in a cache key or a file name."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.core.cache import cache


def counter_key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return f"{kind}:{digest}"


def count(key: str, window_seconds: int) -> int:
    """Count one event under `key`; the number counted in the current window, this one included."""
    now = time.time()
    state = cache.get(key)
    if not state or state["until"] <= now:
        state = {"count": 0, "until": now + window_seconds}
    state["count"] += 1
    # The timeout is the window's end, given again with every count: a cache's incr() may reset it (file cache)
    cache.set(key, state, timeout=max(1, math.ceil(state["until"] - now)))
    return state["count"]


def retry_after(key: str, limit: int) -> int:
    """Seconds until `key` is under `limit` again (0: it is now). A limit of 0 means no limit."""
    if not limit:
        return 0
    state = cache.get(key)
    if not state or state["count"] < limit:
        return 0
    return max(0, math.ceil(state["until"] - time.time()))


def clear(key: str) -> None:
    cache.delete(key)


@dataclass(frozen=True)
class Verdict:
    retry_after: int  # 0: serve it; else the seconds until the window ends (for Retry-After)
    first_refusal: bool  # the first request over the limit in this window (worth an audit row; the rest are not)


def take(key: str, limit: int, window_seconds: int) -> Verdict:
    """Count a request under `key` and say whether it goes over `limit`. A limit of 0 means no limit (and nothing is
    counted)."""
    if not limit:
        return Verdict(0, False)
    counted = count(key, window_seconds)
    if counted <= limit:
        return Verdict(0, False)
    return Verdict(max(1, retry_after(key, limit)), counted == limit + 1)
