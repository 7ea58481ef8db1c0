"""A location stream entry (the scaled mode's feed, dispatch/feed.py) is applied with this
process's own view of each driver it knows: availability and class come from this process's
directory, kept current by driver events, never from the poster's view, which may be stale (a
driver the poster still thought free, who took a trip through another process meanwhile). A
driver this process does not know takes the poster's view. No Redis needed: the entry is
encoded as the feed writes it and read back as Redis returns it (bytes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dispatch.feed import apply_location_entry, encode_entry
from geoindex import GeoIndex
from tests.dispatch.conftest import directory_for

NOW = 1_790_000_000.0


def entry(*rows: tuple[str, float, bool, str]) -> dict[bytes, bytes]:
    """(driver, metres north of a point, available, class) as the poster saw them."""
    ids = [r[0] for r in rows]
    lats = np.array([40.75 + r[1] / 111_000 for r in rows])
    fields: dict[str, Any] = encode_entry(
        "poster", ids, lats, np.full(len(rows), -73.98), np.array([r[2] for r in rows]),
        np.full(len(rows), NOW), [r[3] for r in rows])
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


def test_known_drivers_take_this_process_view_and_strangers_the_posters() -> None:
    index = GeoIndex(ttl_s=10_000, clock=lambda: NOW)
    directory = directory_for(index)
    directory.apply_event("1", "available", "xl", None, 1)
    directory.apply_event("2", "en_route", "standard", "9", 3)
    # Every driver known here, then a mix with a stranger: the two ways an entry is applied.
    applied = apply_location_entry(index, entry(("1", 0, False, "standard"),
                                                ("2", 10, True, "standard")),
                                   directory)
    applied += apply_location_entry(index, entry(("3", 20, True, "standard"),
                                                 ("2", 30, True, "xl"),
                                                 ("4", 40, False, "xl")),
                                    directory)
    assert applied == 5
    snap = index.publish()
    seen = {d: (snap.get(d).available, snap.get(d).vehicle_class) for d in "1234"}
    assert seen == {"1": (True, "xl"), "2": (False, "standard"), "3": (True, "standard"),
                    "4": (False, "xl")}
