"""The one location parser (dispatch.locations.parse_location), without Flask: the rules every
channel (REST, a gateway's batch row, a WebSocket frame) gets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.locations import MAX_FUTURE_S, BadLocation, parse_location
from dispatch.schemas import BatchUpdate
from tests.bad_locations import BAD_LOCATIONS, HERE

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.mark.parametrize(("payload", "field"), BAD_LOCATIONS)
def test_a_bad_location_is_refused_naming_the_field(payload: dict[str, Any],
                                                    field: str) -> None:
    with pytest.raises(BadLocation) as info:
        parse_location(payload, NOW)
    assert info.value.field == field


def test_ts_is_converted_to_epoch_seconds_and_optional() -> None:
    loc = parse_location({**HERE, "heading": 90, "speed_mps": 5, "ts": _iso(NOW - 3)}, NOW)
    assert (loc.lat, loc.lng, loc.heading, loc.speed_mps, loc.ts) == (
        HERE["lat"], HERE["lng"], 90, 5, NOW - 3)
    assert parse_location(HERE, NOW).ts is None


def test_the_future_is_measured_from_the_clock_given() -> None:
    # A device clock may run a little fast: up to MAX_FUTURE_S ahead of the engine's clock.
    assert parse_location({**HERE, "ts": _iso(NOW + MAX_FUTURE_S)}, NOW).ts == NOW + MAX_FUTURE_S
    with pytest.raises(BadLocation):
        parse_location({**HERE, "ts": _iso(NOW + MAX_FUTURE_S + 1)}, NOW)
    # The same instant is fine for a (simulated) clock that is already there.
    later = NOW + 3600
    assert parse_location({**HERE, "ts": _iso(later)}, later).ts == later


def test_a_parsed_batch_row_gets_the_same_time_rules_with_its_path() -> None:
    row = BatchUpdate.model_validate({"driver_id": "7", **HERE, "ts": "2099-01-01T00:00:00Z"})
    with pytest.raises(BadLocation) as info:
        parse_location(row, NOW, where="updates.3.")
    assert info.value.field == "updates.3.ts"
