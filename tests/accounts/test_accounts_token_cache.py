from __future__ import annotations

import time

from flask import Flask

from accounts.auth import ONE_PROCESS_TTL_S, TokenCache, install_token_cache
from accounts.model import Principal, Role
from accounts.tokens import token_hash
from ridehail.kernel.channel import Channel

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


class _Lossy(Channel):
    """A revocations channel relayed between processes: it may lose a message."""

    reliable = False


def _installed(channel: Channel | None, ttl_s: float) -> TokenCache:
    app = Flask("cache")
    if channel is not None:
        app.extensions["revocations"] = channel
    return install_token_cache(app, ttl_s)


def test_one_process_keeps_tokens_longer_because_every_revocation_reaches_the_cache() -> None:
    channel = Channel("revocations")
    cache = _installed(channel, ttl_s=2.0)
    assert cache.ttl_s == ONE_PROCESS_TTL_S
    cache.put("tok", Principal("7", Role.driver, token_hash("tok")))
    channel.publish("7", {"account_id": "7", "token": token_hash("tok")})
    assert cache.get("tok") is None  # the revocation reached it at once


def test_a_relayed_channel_keeps_the_configured_bound_and_zero_stays_off() -> None:
    assert _installed(_Lossy("revocations"), ttl_s=2.0).ttl_s == 2.0
    assert _installed(None, ttl_s=2.0).ttl_s == 2.0
    assert _installed(Channel("revocations"), ttl_s=0.0).ttl_s == 0.0
