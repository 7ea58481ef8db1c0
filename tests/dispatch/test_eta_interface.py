"""The travel-time interface (dispatch/eta.py): one object answers pickup ETAs, and a trip's
duration and road distance; the engine asks it for all three."""

from __future__ import annotations

import pytest

from dispatch.eta import StraightLineEta
from ridehail.kernel.geo import haversine_m

from .test_engine_rules import DROPOFF, PICKUP, make_kit


def test_the_straight_line_answers_duration_distance_and_pickup_etas() -> None:
    eta = StraightLineEta(detour_factor=1.5, speed_mps=5.0)
    d = haversine_m(*PICKUP, *DROPOFF)
    seconds, metres = eta.travel(*PICKUP, *DROPOFF, when=0.0)
    assert metres == pytest.approx(d * 1.5) and seconds == pytest.approx(d * 1.5 / 5.0)
    etas = eta.pickup_etas([PICKUP[0], DROPOFF[0]], [PICKUP[1], DROPOFF[1]], *PICKUP, 0.0)
    assert etas[0] == 0.0 and etas[1] == pytest.approx(seconds)
    assert eta.pickup_etas([], [], *PICKUP, 0.0) == []


class _Slow:
    """Twice the straight line's time and distance: what the engine shows must follow it."""

    def __init__(self) -> None:
        self.line = StraightLineEta()
        self.asked: list[float] = []

    def travel(self, a: float, b: float, c: float, d: float, when: float) -> tuple[float, float]:
        self.asked.append(when)
        s, m = self.line.travel(a, b, c, d)
        return 2 * s, 2 * m

    def pickup_etas(self, lats, lngs, lat, lng, when):  # noqa: ANN001, ANN201
        self.asked.append(when)
        return [2 * s for s in self.line.pickup_etas(lats, lngs, lat, lng)]


def test_the_engine_asks_its_model_for_pickup_etas_nearby_and_the_quote() -> None:
    model = _Slow()
    plain, slow = make_kit(), make_kit(eta=model)
    for kit in (plain, slow):
        kit.driver("1", 400)
    (_, fast_eta), = plain.engine.nearby(*PICKUP, 2000, 5)
    (_, slow_eta), = slow.engine.nearby(*PICKUP, 2000, 5)
    assert slow_eta == pytest.approx(2 * fast_eta)
    a = plain.engine.request_trip("50", PICKUP, DROPOFF)
    b = slow.engine.request_trip("50", PICKUP, DROPOFF)
    assert b.fare_estimate is not None and a.fare_estimate is not None
    assert b.fare_estimate > a.fare_estimate  # priced on the model's longer route
    offer, = slow.engine.pending_offers("1")
    assert offer.eta_s == pytest.approx(2 * plain.engine.pending_offers("1")[0].eta_s, rel=0.01)
    assert model.asked and all(w == slow.clock.now() for w in model.asked)
