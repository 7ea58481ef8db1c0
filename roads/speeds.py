"""Which OpenStreetMap ways a car drives on, in which direction, and how fast.

Speeds are free-flow estimates by road class (the `highway` tag), the car profile of OSRM
(`profiles/car.lua`) in km/h; where a way carries `maxspeed`, 80% of it instead (OSRM's
`speed_reduction`: nobody drives the limit door to door). Ways a car may not use (footways,
paths, `access=no|private`, `motor_vehicle=no`, areas) are not roads here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# km/h by highway class (OSRM car profile); anything else is not a road for cars.
SPEED_KMH: dict[str, float] = {
    "motorway": 90.0, "motorway_link": 45.0,
    "trunk": 85.0, "trunk_link": 40.0,
    "primary": 65.0, "primary_link": 30.0,
    "secondary": 55.0, "secondary_link": 25.0,
    "tertiary": 40.0, "tertiary_link": 20.0,
    "unclassified": 25.0, "residential": 25.0, "road": 25.0,
    "living_street": 10.0, "service": 15.0,
}
MAXSPEED_SHARE = 0.8
MPH_KMH = 1.609344
_NO_CARS = frozenset({"no", "private"})
_MAXSPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$")


def is_drivable(tags: Mapping[str, str]) -> bool:
    """A way a car may drive along: a known road class, not an area, not closed to cars."""
    if tags.get("highway") not in SPEED_KMH or tags.get("area") == "yes":
        return False
    return not any(tags.get(k) in _NO_CARS for k in ("access", "motor_vehicle", "motorcar"))


def maxspeed_kmh(value: str | None) -> float | None:
    """`maxspeed` in km/h: "50", "30 mph", "50;30" (the first); None for "none", "signals",
    zone codes ("DE:urban") and anything else without a number."""
    if not value:
        return None
    m = _MAXSPEED.match(value.split(";")[0])
    if not m:
        return None
    speed = float(m.group(1)) * (MPH_KMH if m.group(2) == "mph" else 1.0)
    return speed if speed > 0 else None


def speed_mps(tags: Mapping[str, str]) -> float:
    """The free-flow speed of a drivable way, in m/s."""
    limit = maxspeed_kmh(tags.get("maxspeed"))
    kmh = limit * MAXSPEED_SHARE if limit is not None else SPEED_KMH[tags["highway"]]
    return kmh / 3.6


def directions(tags: Mapping[str, str]) -> tuple[bool, bool]:
    """(forward, backward): may a car drive the way in its node order, and against it.
    `oneway=yes|true|1` forward only, `-1|reverse` backward only; motorways and roundabouts
    are one way unless tagged `oneway=no`."""
    oneway = tags.get("oneway", "")
    if oneway in ("yes", "true", "1"):
        return True, False
    if oneway in ("-1", "reverse"):
        return False, True
    if oneway == "no":
        return True, True
    implied = (tags.get("highway") == "motorway"
               or tags.get("junction") in ("roundabout", "circular"))
    return True, not implied
