"""KPIs and conservation checks, shared by both modes.

The modes feed facts in as they happen (ticks, offers, hook calls) and, at the end, one
`TripFacts` per request read back from the engine or the API. Everything here is arithmetic on
those facts: no clock, no randomness, so the same run gives the same figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import h3
import numpy as np

TERMINAL = frozenset({"completed", "cancelled", "no_driver_found"})
CELL_RES = 7  # the surge resolution: ~5 km2 hexagons, readable on a city map


@lru_cache(maxsize=65536)
def _cell(lat: float, lng: float) -> str:
    """The map's cell of a point; cached, as an idle driver is sampled where it stood."""
    return h3.latlng_to_cell(lat, lng, CELL_RES)  # type: ignore[no-any-return]


class ConservationError(AssertionError):
    """A run broke an invariant the engine promises (the message lists the violations)."""


@dataclass(frozen=True)
class TripFacts:
    trip_id: str
    requested_at: float  # simulated seconds from the start
    state: str
    driver_id: str | None = None
    arrived_at: float | None = None
    ended_at: float | None = None  # completed or cancelled
    fare_cents: int | None = None
    cancelled_by: str | None = None
    # Every driver who was assigned at some point, with (assigned, released) times.
    assignments: tuple[tuple[str, float, float], ...] = ()


@dataclass
class Metrics:
    duration_s: float
    interval_s: float = 300.0
    offers_made: int = 0
    offers_accepted: int = 0
    finished: Counter[str] = field(default_factory=Counter)
    completed_calls: Counter[str] = field(default_factory=Counter)
    cell_demand: Counter[str] = field(default_factory=Counter)
    _supply_sum: Counter[str] = field(default_factory=Counter)
    _supply_samples: int = 0
    _online: list[float] = field(default_factory=list)  # per interval: driver-seconds online
    _busy: list[float] = field(default_factory=list)
    # Dispatch's predicted pickup time (the offer's eta_s) and the drive the driver took.
    _pickup_eta: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = max(1, int(np.ceil(self.duration_s / self.interval_s)))
        self._online = [0.0] * n
        self._busy = [0.0] * n

    # --- feeds -----------------------------------------------------------------------------

    def tick(self, t: float, dt: float, online: int, busy: int) -> None:
        """`online` drivers, `busy` of them en route or on a trip, for the `dt` before `t`."""
        if t > self.duration_s or dt <= 0:
            return
        k = min(len(self._online) - 1, int(max(0.0, t - dt) // self.interval_s))
        self._online[k] += online * dt
        self._busy[k] += busy * dt

    def supply_sample(self, lats: np.ndarray, lngs: np.ndarray) -> None:
        """Idle drivers' positions at one moment; the map shows the mean per cell."""
        self._supply_samples += 1
        self._supply_sum.update(map(_cell, lats.tolist(), lngs.tolist()))

    def pickup_eta(self, predicted_s: float, actual_s: float) -> None:
        if actual_s > 0:
            self._pickup_eta.append((predicted_s, actual_s))

    def request(self, lat: float, lng: float) -> None:
        self.cell_demand[_cell(lat, lng)] += 1

    # --- results ---------------------------------------------------------------------------

    def cell_supply(self) -> dict[str, float]:
        n = max(1, self._supply_samples)
        return {c: round(v / n, 3) for c, v in sorted(self._supply_sum.items())}

    def kpis(self, trips: list[TripFacts], empty_m: float, loaded_m: float,
             ) -> tuple[dict[str, float | int | None], list[float], list[dict[str, float]]]:
        n = len(trips)
        states = Counter(t.state for t in trips)
        waits = [t.arrived_at - t.requested_at for t in trips
                 if t.arrived_at is not None and t.state == "completed"]
        online, busy = sum(self._online), sum(self._busy)
        revenue_cents = sum(t.fare_cents or 0 for t in trips if t.state == "completed")

        def pct(a: float, b: float) -> float | None:
            return round(100.0 * a / b, 3) if b else None

        w = np.array(waits) if waits else None
        warm_k = self._warmup_intervals(trips)
        steady_online, steady_busy = sum(self._online[warm_k:]), sum(self._busy[warm_k:])
        kpis: dict[str, float | int | None] = {
            "requests": n,
            "completed": states["completed"],
            "served_pct": pct(states["completed"], n),
            "no_driver_pct": pct(states["no_driver_found"], n),
            "rider_cancel_pct": pct(sum(1 for t in trips if t.state == "cancelled"
                                        and t.cancelled_by == "rider"), n),
            "pickup_wait_mean_s": round(float(w.mean()), 3) if w is not None else None,
            "pickup_wait_p50_s": _q(w, 50),
            "pickup_wait_p90_s": _q(w, 90),
            "pickup_wait_p99_s": _q(w, 99),
            "offers": self.offers_made,
            "offer_acceptance_pct": pct(self.offers_accepted, self.offers_made),
            "driver_utilisation_pct": pct(busy, online),
            # The fleet starts with no trips in hand, so utilisation first climbs: the headline
            # figure leaves that warm-up out (None when the run is too short to have one).
            "warmup_s": warm_k * self.interval_s if warm_k else None,
            "driver_utilisation_after_warmup_pct": pct(steady_busy, steady_online)
            if warm_k else None,
            "empty_km_pct": pct(empty_m, empty_m + loaded_m),
            "empty_km": round(empty_m / 1000.0, 3),
            "loaded_km": round(loaded_m / 1000.0, 3),
            "trips_per_hour": round(states["completed"] * 3600.0 / self.duration_s, 3)
            if self.duration_s else None,
            "revenue": round(revenue_cents / 100.0, 2),
            **self._pickup_eta_kpis(),
        }
        return kpis, [round(x, 3) for x in waits], self._timeseries(trips)

    def _pickup_eta_kpis(self) -> dict[str, float | int | None]:
        """How far dispatch's pickup ETAs were from the simulated drives (None: no pickups)."""
        if not self._pickup_eta:
            return {"pickup_eta_median_abs_pct_error": None, "pickup_eta_p90_abs_pct_error": None,
                    "pickup_eta_median_predicted_over_actual": None, "pickup_eta_pairs": 0}
        p, a = np.array(self._pickup_eta).T
        ape = np.abs(p - a) / a * 100
        return {"pickup_eta_median_abs_pct_error": round(float(np.median(ape)), 1),
                "pickup_eta_p90_abs_pct_error": round(float(np.quantile(ape, 0.9)), 1),
                "pickup_eta_median_predicted_over_actual": round(float(np.median(p / a)), 3),
                "pickup_eta_pairs": len(ape)}

    def _warmup_intervals(self, trips: list[TripFacts]) -> int:
        """How many leading intervals are warm-up: about one trip's length (the median time
        from request to completion), in whole intervals, at least one and at most half of
        the run; 0 when the run has fewer than two intervals."""
        n = len(self._online)
        lengths = [t.ended_at - t.requested_at for t in trips
                   if t.state == "completed" and t.ended_at is not None]
        k = int(np.ceil(float(np.median(lengths)) / self.interval_s)) if lengths else 1
        return min(max(k, 1), n // 2)

    def _timeseries(self, trips: list[TripFacts]) -> list[dict[str, float]]:
        asked = [0] * len(self._online)
        served = [0] * len(self._online)
        for t in trips:
            k = int(t.requested_at // self.interval_s)
            if 0 <= k < len(asked):
                asked[k] += 1
                served[k] += t.state == "completed"
        out = []
        for k in range(len(asked)):
            point: dict[str, float] = {"t_s": k * self.interval_s, "requests": asked[k]}
            if self._online[k]:
                point["utilisation_pct"] = round(100.0 * self._busy[k] / self._online[k], 3)
            if asked[k]:
                point["served_pct"] = round(100.0 * served[k] / asked[k], 3)
            out.append(point)
        return out


def _q(w: np.ndarray | None, q: float) -> float | None:
    return None if w is None else round(float(np.percentile(w, q)), 3)


def conservation_violations(trips: list[TripFacts], finished: Counter[str],
                            completed_calls: Counter[str]) -> list[str]:
    """Every request ends in exactly one terminal state (one `trip_finished` call, agreeing
    with the stored state); every completed trip is charged once (one `trip_completed` call);
    no driver holds two trips at once."""
    bad: list[str] = []
    for t in trips:
        if t.state not in TERMINAL:
            bad.append(f"trip {t.trip_id} ended the run {t.state}, not in a terminal state")
        if finished[t.trip_id] != 1:
            bad.append(f"trip {t.trip_id}: trip_finished fired {finished[t.trip_id]} times")
        want = 1 if t.state == "completed" else 0
        if completed_calls[t.trip_id] != want:
            bad.append(f"trip {t.trip_id} ({t.state}): trip_completed fired "
                       f"{completed_calls[t.trip_id]} times, expected {want}")
    known = {t.trip_id for t in trips}
    bad += [f"trip_finished for unknown trip {k}" for k in finished if k not in known]
    by_driver: dict[str, list[tuple[float, float, str]]] = {}
    for t in trips:
        for driver, start, end in t.assignments:
            by_driver.setdefault(driver, []).append((start, end, t.trip_id))
    for driver, spans in sorted(by_driver.items()):
        spans.sort()
        for (_s1, e1, a), (s2, _e2, b) in zip(spans, spans[1:], strict=False):
            if s2 < e1:
                bad.append(f"driver {driver} held trips {a} and {b} at once")
    return bad
