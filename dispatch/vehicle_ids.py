"""Opaque vehicle ids for `GET /v1/vehicles/nearby`: a rider must not learn drivers' account
ids, nor follow one chosen car across queries for long (issue 13, item 10).

The id is an HMAC of (rider, driver, time bucket) under a key derived from the app's secret:
the same car has a different id for each rider, and a new one every `rotate_s` seconds.
Within a bucket it is stable, so a client can animate its markers between refreshes. Only
the server, holding the secret, can map an id back (it never needs to).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac

# Separates this use of the secret key from any other (a key per purpose).
_PURPOSE = b"ridehail nearby vehicle id v1"
# 96 bits: collisions within one answer (at most 100 cars) are out of reach.
ID_BYTES = 12


@functools.lru_cache(maxsize=8)
def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def nearby_vehicle_id(secret_key: str, rider_id: str, driver_id: str, now: float,
                      rotate_s: float) -> str:
    """The id `rider_id` sees for `driver_id`'s vehicle at time `now` (seconds): 16 URL-safe
    characters, the same for the whole bucket of `rotate_s` seconds that holds `now`."""
    bucket = int(now // rotate_s)
    message = f"{rider_id}\x00{driver_id}\x00{bucket}".encode()
    digest = hmac.new(_key(secret_key), message, hashlib.sha256).digest()[:ID_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")
