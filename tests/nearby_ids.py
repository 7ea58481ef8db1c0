"""Nearby shows opaque per-rider vehicle ids (issue 13, item 10). Tests that follow one driver
on the map map its account id to the ids the rider may see, with the server's own function."""

from __future__ import annotations

import time

from dispatch.vehicle_ids import nearby_vehicle_id
from ridehail.settings import Settings


def opaque_ids(rider_id: str, driver_id: str, settings: Settings | None = None,
               now: float | None = None) -> set[str]:
    """The ids `rider_id` may see for `driver_id` around `now` (default: the wall clock, as a
    server's): the buckets before, at and after it, so a bucket boundary during the request
    does not fail the test. A server started by the tests uses the default secret key."""
    s = settings or Settings()
    t = time.time() if now is None else now
    return {nearby_vehicle_id(s.secret_key, rider_id, driver_id, t + k * s.nearby_id_rotate_s,
                              s.nearby_id_rotate_s) for k in (-1, 0, 1)}
