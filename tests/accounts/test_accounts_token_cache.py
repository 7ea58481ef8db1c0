from __future__ import annotations

import time

from accounts.auth import TokenCache
from accounts.model import Principal, Role

P = Principal("1", Role.rider, "h")


def test_cache_returns_until_expiry_and_drop_forgets_at_once() -> None:
    cache = TokenCache(ttl_s=60.0)
    assert cache.get("t") is None
    cache.put("t", P)
    assert cache.get("t") == P
    cache.drop("t")
    assert cache.get("t") is None


def test_expired_entries_are_not_served() -> None:
    cache = TokenCache(ttl_s=60.0)
    cache.put("t", P)
    cache._entries["t"] = (time.monotonic() - 1, P)  # as if 61 s had passed
    assert cache.get("t") is None


def test_zero_ttl_disables_the_cache_and_size_is_bounded() -> None:
    off = TokenCache(ttl_s=0.0)
    off.put("t", P)
    assert off.get("t") is None
    small = TokenCache(ttl_s=60.0, max_entries=3)
    for i in range(10):
        small.put(str(i), P)
    assert len(small._entries) <= 3 and small.get("9") == P
