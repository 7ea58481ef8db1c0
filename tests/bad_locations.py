"""Locations every channel must refuse, with the field the refusal names: the unit tests of
the parser (tests/dispatch/test_locations.py) and the REST and WebSocket tests
(tests/rides/test_rides_locations.py) send the same ones."""

from __future__ import annotations

from typing import Any

HERE = {"lat": 40.758, "lng": -73.9855}  # Midtown Manhattan, inside the service area

BAD_LOCATIONS: list[tuple[dict[str, Any], str]] = [
    ({**HERE, "ts": "2099-01-01T00:00:00Z"}, "ts"),  # the future
    ({**HERE, "ts": "2020-01-01T00:00:00"}, "ts"),  # no zone
    ({**HERE, "ts": "yesterday"}, "ts"),
    ({"lat": 91, "lng": 0}, "lat"),
    ({"lat": 0, "lng": -181}, "lng"),
    ({"lat": "40.7", "lng": -73.9}, "lat"),
    ({"lat": 40.7}, "lng"),
    ({**HERE, "heading": 400}, "heading"),
    ({**HERE, "speed_mps": -1}, "speed_mps"),
    ({**HERE, "altitude": 3}, "altitude"),
]
