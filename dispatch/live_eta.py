"""Travel times corrected by what rides take now: a travel-time model (dispatch/eta.py) times a
factor learned from the rides this process completed, so a slow week (snow, a closed bridge,
a holiday's empty streets) stops being predicted from the weeks the model was fitted on.

The factor is exp(mean log(actual / predicted)) over recently completed rides, each weighted
by exp(-age / `half_life_s` x ln 2), shrunk toward 1 as if `prior_rides` more rides had
matched the model exactly (a few rides move it little; an old correction fades back to the
model). Measured on the yellow-cab sample's last week (bench/eta.py), the week after the
January 2016 blizzard: the fitted model predicts 0.88 of what rides took; corrected, 0.99.

Who can move it, and how far: a ride's duration is what its driver reports (start and
complete), and a rider and a driver working together can fake rides, so:
- each ride's log ratio is clipped to +-ln 2;
- a ride the fit would refuse (`learned_eta.unlearnable`: implausible duration or speed) is
  not counted;
- each party to a ride (its driver, its rider) counts for at most `per_party_rides` rides at a
  time, decayed like the rest: a party's further rides count only as the party's earlier ones
  fade. Faking rides therefore needs many accounts on both sides, not many rides;
- the factor is bounded to [1/`max_factor`, `max_factor`].
With the defaults (a cap of 3, a prior of 20), reaching the bound with rides clipped at 2x
takes about 0.47 x (20 + the city's other recent rides) colluding drivers, each with a rider of
its own: 10 on an empty night, 480 against 1,000 honest recent rides.

In the scaled mode each process announces the rides it learns from (`announce`,
dispatch/cluster.py:RedisRideEvents) and learns the others' too, so every process sees the
city's rides and counts each party's share across them; the upfront fare does not depend on
which process answers later: the trip keeps the route it
was priced on (`Trip.quote_duration_s`, `quote_distance_m`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence

from .eta import EtaModel
from .learned_eta import unlearnable

RIDE_CLIP = math.log(2.0)  # one ride's log ratio counts at most this far from 0
FADED = 1e-3  # a party whose decayed weight is below this is forgotten


class LiveCorrection:
    """The decayed sums behind the factor; thread-safe (one lock, O(1) per ride and read)."""

    def __init__(self, half_life_s: float = 6 * 3600.0, prior_rides: float = 20.0,
                 max_factor: float = 1.5, per_party_rides: float = 3.0) -> None:
        if not (half_life_s > 0 and prior_rides >= 0 and max_factor >= 1
                and per_party_rides > 0):
            raise ValueError("half_life_s must be > 0, prior_rides >= 0, max_factor >= 1 and "
                             "per_party_rides > 0")
        self.rate = math.log(2.0) / half_life_s
        self.prior = prior_rides
        self.bound = math.log(max_factor)
        self.per_party = per_party_rides
        self._lock = threading.Lock()
        self._sum = 0.0  # sum of w x log ratio, as of self._at
        self._weight = 0.0  # sum of w, as of self._at
        self._at = -math.inf
        self._parties: dict[str, tuple[float, float]] = {}  # party -> (its weight, as of when)
        self._prune_above = 1024  # forget faded parties when there are more than this
        self.rides = 0  # rides counted, in full or in part
        self.capped = 0  # rides not counted at all: a party had used its share

    def observe(self, predicted_s: float, actual_s: float, at: float,
                parties: Iterable[str] = ()) -> None:
        """A ride the model predicted `predicted_s` for took `actual_s`, ending at `at`;
        `parties` are who vouch for it (its driver's and rider's keys)."""
        if not (predicted_s > 0 and actual_s > 0 and math.isfinite(predicted_s + actual_s)):
            return
        r = min(max(math.log(actual_s / predicted_s), -RIDE_CLIP), RIDE_CLIP)
        with self._lock:
            w = self._share(parties, at)
            if w <= 0.0:
                self.capped += 1
                return
            if at >= self._at:
                k = math.exp(-self.rate * (at - self._at)) if self._weight else 0.0
                self._sum, self._weight, self._at = (self._sum * k + w * r,
                                                     self._weight * k + w, at)
            else:  # reported late: weighted at its own age
                w *= math.exp(-self.rate * (self._at - at))
                self._sum, self._weight = self._sum + w * r, self._weight + w
            self.rides += 1

    def _share(self, parties: Iterable[str], at: float) -> float:
        """The weight (0 to 1) a ride at `at` may have: what its parties have left of their
        `per_party` rides; each party is charged it. Under the lock."""
        now: list[tuple[str, float, float]] = []
        w = 1.0
        for key in parties:
            used, when = self._parties.get(key, (0.0, at))
            used = self._faded(used, when, at)
            now.append((key, used, max(at, when)))
            w = min(w, self.per_party - used)
        if w <= 0.0:
            return 0.0
        for key, used, t in now:
            self._parties[key] = (used + w, t)
        if len(self._parties) > self._prune_above:
            self._forget_faded(at)
        return w

    def used(self, party: str, at: float) -> float:
        """How many rides' worth of `party`'s share is in use at `at`."""
        with self._lock:
            used, when = self._parties.get(party, (0.0, at))
        return self._faded(used, when, at)

    def _faded(self, weight: float, when: float, at: float) -> float:
        """`weight` as of `when`, decayed to `at` (never grown: a late `at` keeps it)."""
        return weight * math.exp(-self.rate * max(0.0, at - when))

    def _forget_faded(self, at: float) -> None:
        """Drop the parties whose weight has faded (amortised: the next pass waits until the
        table has doubled)."""
        self._parties = {k: (u, t) for k, (u, t) in self._parties.items()
                         if self._faded(u, t, at) >= FADED}
        self._prune_above = max(1024, 2 * len(self._parties))

    def factor(self, now: float) -> float:
        """What to multiply the model's seconds by at `now`."""
        with self._lock:
            s, w, at = self._sum, self._weight, self._at
        if not w:
            return 1.0
        k = math.exp(-self.rate * max(0.0, now - at))
        return math.exp(min(max(s * k / (w * k + self.prior), -self.bound), self.bound))


class LiveEta:
    """An `EtaModel`: `model`'s seconds x the live factor at the departure time; its road
    metres unchanged. `observe_ride` is what teaches it."""

    def __init__(self, model: EtaModel, correction: LiveCorrection | None = None,
                 announce: Callable[[float, float, float, tuple[str, ...]], None] | None = None
                 ) -> None:
        self.model = model
        self.correction = correction or LiveCorrection()
        # Scaled mode: tell the other processes (predicted, actual, ended at, parties).
        self.announce = announce

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float) -> tuple[float, float]:
        s, m = self.model.travel(from_lat, from_lng, to_lat, to_lng, when)
        return s * self.correction.factor(when), m

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float) -> list[float]:
        f = self.correction.factor(when)
        return [s * f for s in self.model.pickup_etas(from_lats, from_lngs, to_lat, to_lng, when)]

    def observe_ride(self, pickup: tuple[float, float], dropoff: tuple[float, float],
                     started_at: float, completed_at: float, parties: tuple[str, ...] = ()
                     ) -> None:
        """A completed ride: the model's own (uncorrected) time for it against what it took;
        `parties` as in `LiveCorrection.observe`. Announced when there is an `announce`."""
        actual = completed_at - started_at
        if unlearnable(*pickup, *dropoff, actual, None) is not None:
            return
        predicted, _m = self.model.travel(*pickup, *dropoff, started_at)
        self.correction.observe(predicted, actual, completed_at, parties)
        if self.announce is not None:
            self.announce(predicted, actual, completed_at, parties)
