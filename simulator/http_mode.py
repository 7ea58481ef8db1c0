"""HTTP mode: the same riders and drivers as clients of a running server's REST API.

A load generator, not a second engine: a scheduler thread pops due actions (in simulated
time = wall time x `speed`) and hands them to a bounded thread pool; each driver's actions are
chained (the next is scheduled when the last one returns), so a driver never races itself.

Drivers use one of two channels. A polling driver discovers offers by polling
`GET /v1/drivers/me/offers` while idle, as a simple app would; its locations go up as one
`POST /v1/locations` batch per tick when a service token is given, otherwise one
`POST /v1/drivers/me/location` per driver. A WebSocket driver (`ws_share` of the fleet, spread
evenly: every other driver at 0.5) holds `/v1/drivers/me/ws` open (simulator/ws_driver.py): its
offers are pushed and its locations go up as frames. Accepting, rejecting and driving a trip
are the same REST calls on both. The report counts the drivers and the offers by channel.

The run stops by itself: after
the demand window it finishes the open trips (bounded by the drain limit) and reads every
trip back for the report. `run_demo_fleet` keeps a small fleet going until told to stop.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
from tqdm import tqdm

from .demand import TripRequest, build_demand
from .fleet import Fleet, Phase
from .http_client import Api
from .metrics import ConservationError, Metrics, TripFacts, conservation_violations
from .report import SimulationResult
from .riders import RiderPool, Riders
from .scenario import Scenario, SimConfig, build_result, prepare
from .ws_driver import WsDrivers

POLL_SIM_S = 5.0  # an idle driver asks for offers this often (simulated time: well inside
POLL_MIN_WALL_S = 0.05  # the server's 15 s offer deadline), but at most 20 times a wall second
# A rider's app refreshes a trip waiting for a driver every 2 wall seconds; once a driver has
# it, our simulated driver reports how it ends, and the refresh only catches the odd case.
REFRESH_WAITING_WALL_S = 2.0
REFRESH_ASSIGNED_WALL_S = 15.0
TERMINAL = ("completed", "cancelled", "no_driver_found")
WS_CONNECT_WAIT_S = 10.0  # at the start, how long the WebSocket drivers get to connect
DEMO_WS_SHARE = 0.5  # the demo fleet: half the drivers on the WebSocket

log = logging.getLogger("simulator.http")


def ws_indices(n: int, share: float) -> set[int]:
    """Which of `n` drivers use the WebSocket: `share` of them, spread evenly (0.5: every
    other driver, starting with the second)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"ws_share: must be in [0, 1], got {share}")
    return {i for i in range(n) if int((i + 1) * share) > int(i * share)}


class HttpSimulation:
    def __init__(self, sc: Scenario, url: str, *, speed: float = 60.0, concurrency: int = 8,
                 service_token: str | None = None, ws_share: float = 0.0) -> None:
        self.sc, self.speed = sc, speed
        self.ws_index = ws_indices(sc.config.drivers, ws_share)
        self.api = Api(url)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sim-http")
        self.lock = threading.RLock()
        self.service_token = service_token
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.stop = threading.Event()
        tag = uuid.uuid4().hex[:8]
        drivers = self.api.sign_up("driver", sc.config.drivers, tag)
        self.driver_tokens = dict(drivers)
        self.fleet = Fleet(sc.config.fleet_config(), sc.city, sc.rng, [d for d, _ in drivers],
                           router=sc.router)
        self.riders = Riders(sc.config.rider_config(), sc.rng)
        self.rider_tokens: dict[str, str] = {}
        self.rider_pool = RiderPool()
        for rider, token in self.api.sign_up("rider", 2, tag + "r"):
            self.rider_tokens[rider] = token
            self.rider_pool.add(rider)
        self.rider_tag = itertools.count()
        self.tag = tag
        self.metrics = Metrics(sc.config.duration_s)
        self.trips: dict[str, tuple[str, str]] = {}  # trip id -> (rider id, rider token)
        self.open: set[str] = set()
        # What the fleet did, as the server answered: requests sent, trips created, offers
        # our drivers accepted (assigned), and how trips ended.
        self.counts: Counter[str] = Counter()
        # WebSocket drivers: offers pushed and not yet taken, and who is deciding on one now.
        self.ws = WsDrivers(url, self.api.refusals, self._offer_pushed) \
            if self.ws_index else None
        self.ws_pending: dict[int, list[dict[str, Any]]] = {i: [] for i in self.ws_index}
        self.deciding: set[int] = set()
        self.t0 = time.time()

    # --- time ------------------------------------------------------------------------------

    def now(self) -> float:
        return (time.time() - self.t0) * self.speed

    def at(self, when: float, fn: Callable[[], None]) -> None:
        with self.lock:
            heapq.heappush(self.heap, (when, next(self.seq), fn))

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a bug in an action: counted and logged, never lost
                self.api.refusals.add(f"simulator error: {type(exc).__name__}: {exc}")
                log.exception("simulator action failed")
        return run

    def loop(self, until: Callable[[], bool], progress: bool = False) -> None:
        total = int(self.sc.config.duration_s)
        with tqdm(total=total, unit="sim s", disable=not progress, leave=False,
                  desc="simulate http") as bar:
            while not self.stop.is_set() and not until():
                with self.lock:
                    due = []
                    while self.heap and self.heap[0][0] <= self.now():
                        due.append(heapq.heappop(self.heap)[2])
                    wait = (self.heap[0][0] - self.now()) / self.speed if self.heap else 0.05
                for fn in due:
                    self.pool.submit(self._guarded(fn))
                bar.update(max(0, min(int(self.now()), total) - bar.n))
                # A load generator paces itself on the wall clock: this is its schedule.
                self.stop.wait(min(max(wait, 0.001), 0.05))

    # --- the run ---------------------------------------------------------------------------

    def start(self, requests_: list[TripRequest]) -> None:
        self.fleet.place(requests_)
        self.fleet.online_at[:] = 0.0  # the HTTP fleet logs on at once
        for i, d in enumerate(self.fleet.ids):
            self.api.call("PUT", "/v1/drivers/me/status", self.driver_tokens[d],
                          {"status": "online"})
            self.fleet.phase[i] = Phase.idle
        if self.ws is not None:
            self.ws.start({i: self.driver_tokens[self.fleet.ids[i]] for i in self.ws_index})
            up = self.ws.wait_connected(WS_CONNECT_WAIT_S)
            if up < len(self.ws_index):
                log.warning("%d of %d WebSocket drivers connected within %.0f s (the others "
                            "keep trying)", up, len(self.ws_index), WS_CONNECT_WAIT_S)
        self.t0 = time.time()
        self.schedule_requests(requests_, 0.0)
        self.at(0.0, self._tick)
        for i in range(len(self.fleet.ids)):
            if i not in self.ws_index:
                self.at(0.0, functools.partial(self._poll, i))

    def schedule_requests(self, reqs: list[TripRequest], offset: float) -> None:
        for r in reqs:
            self.at(offset + r.t_s, functools.partial(self._request, r))

    def run(self, progress: bool = False) -> SimulationResult:
        cfg = self.sc.config
        self.start(self.sc.plan.requests)
        self.loop(lambda: self.now() >= cfg.duration_s, progress)
        self.loop(lambda: not self.open or self.now() >= cfg.duration_s + cfg.drain_limit_s)
        self.stop.set()
        self.pool.shutdown(wait=True)
        self.close_ws()
        return self.result()

    def close_ws(self) -> None:
        if self.ws is not None:
            self.ws.close()

    def result(self) -> SimulationResult:
        trips = [self._facts(tid) for tid in sorted(self.trips, key=int)]
        finished = Counter({t.trip_id: 1 for t in trips if t.state in
                            ("completed", "cancelled", "no_driver_found")})
        done = Counter({t.trip_id: 1 for t in trips if t.state == "completed"})
        bad = conservation_violations(trips, finished, done)
        if bad:
            raise ConservationError("; ".join(bad[:10]))
        self.fleet.finish_legs(self.now())
        return build_result(self.sc, self.metrics, trips, self.fleet.empty_m,
                            self.fleet.loaded_m, "http",
                            {"speed": self.speed, "http_counts": self.summary(),
                             "http_refusals": self.api.refusals.as_dict(),
                             "ws_channel": self.ws.stats() if self.ws else {},
                             **self.fleet.road_figures()})

    def summary(self) -> dict[str, int]:
        """The fleet's figures so far: ride requests sent, trips created, assigned to our
        drivers, completed, ended otherwise, still open, refusals (all reasons), riders; and
        by channel, the drivers polling and on the WebSocket (and how many sockets are open
        now) and the offers each got (polled, pushed)."""
        with self.lock:
            out = {k: self.counts[k] for k in ("requests", "created", "assigned", "completed",
                                               "cancelled", "no_driver_found")}
            out.update(open=len(self.open), riders=self.rider_pool.size,
                       refusals=self.api.refusals.total(),
                       drivers_poll=len(self.fleet.ids) - len(self.ws_index),
                       drivers_ws=len(self.ws_index),
                       ws_connected=self.ws.stats()["connected"] if self.ws else 0,
                       offers_poll=self.counts["offers_poll"],
                       offers_ws=self.counts["offers_ws"])
        return out

    def _sim_t(self, iso: str | None) -> float | None:
        if iso is None:
            return None
        return (datetime.fromisoformat(iso).timestamp() - self.t0) * self.speed

    def _facts(self, tid: str) -> TripFacts:
        _rider, token = self.trips[tid]
        t = self.api.call("GET", f"/v1/trips/{tid}", token) or {"state": "unknown"}
        end = self._sim_t(t.get("completed_at") or t.get("cancelled_at"))
        assigned = self._sim_t(t.get("assigned_at"))
        spans = ((t["driver_id"], assigned, end if end is not None else self.now()),) \
            if t.get("driver_id") and assigned is not None else ()
        fare = (t.get("fare") or {}).get("amount")
        return TripFacts(tid, self._sim_t(t.get("requested_at")) or 0.0, t["state"],
                         t.get("driver_id"), self._sim_t(t.get("arrived_at")), end, fare,
                         t.get("cancelled_by"), spans)

    # --- drivers ---------------------------------------------------------------------------

    def _tick(self) -> None:
        t = self.now()
        with self.lock:
            lats, lngs = self.fleet.positions(t)
            online = np.flatnonzero(self.fleet.phase != Phase.offline).tolist()
            busy = int(np.isin(self.fleet.phase, (3, 4, 5)).sum())
        self.metrics.tick(t, self.sc.config.tick_s, len(online), busy)
        ids = self.fleet.ids
        if self.ws is not None:  # outside the lock: the WebSocket loop takes it for offers
            self.ws.send_locations((i, lats[i], lngs[i]) for i in online if i in self.ws_index)
            online = [i for i in online if i not in self.ws_index]
        if self.service_token:
            ups = [{"driver_id": ids[i], "lat": lats[i], "lng": lngs[i]} for i in online]
            for k in range(0, len(ups), 5000):
                self.api.call("POST", "/v1/locations", self.service_token,
                              {"updates": ups[k:k + 5000]})
        else:
            for i in online:
                self.api.call("POST", "/v1/drivers/me/location", self.driver_tokens[ids[i]],
                              {"lat": lats[i], "lng": lngs[i]})
        if not self.stop.is_set():
            # Every tick_s simulated, but never faster than twice a wall second.
            self.at(t + max(self.sc.config.tick_s, 0.5 * self.speed), self._tick)

    def _poll(self, i: int) -> None:
        """A polling driver, idle: asks for its offers, and again later if there is none."""
        d = self.fleet.ids[i]
        offers = self.api.call("GET", "/v1/drivers/me/offers", self.driver_tokens[d]) or []
        if not offers:
            gap = max(POLL_SIM_S, POLL_MIN_WALL_S * self.speed)
            self.at(self.now() + gap, lambda: self._poll(i))
            return
        with self.lock:
            self.counts["offers_poll"] += 1
        if not self._decide(i, offers[0]):
            self.at(self.now(), lambda: self._poll(i))

    def _offer_pushed(self, i: int, offer: dict[str, Any]) -> None:
        """A WebSocket driver got an offer (on the WebSocket loop's thread: must not block)."""
        with self.lock:
            self.counts["offers_ws"] += 1
            self.ws_pending[i].append(offer)
        self.at(self.now(), lambda: self._ws_next(i))

    def _ws_next(self, i: int) -> None:
        """A WebSocket driver, idle: decides on its pushed offers, oldest first, until it
        accepts one or has none left (one decision at a time per driver)."""
        while True:
            with self.lock:
                if i in self.deciding or self.fleet.phase[i] != Phase.idle:
                    return
                offer = self._take_offer(i)
                if offer is None:
                    return
                self.deciding.add(i)
            try:
                accepted = self._decide(i, offer)
            finally:
                with self.lock:
                    self.deciding.discard(i)
            if accepted:
                return

    def _take_offer(self, i: int) -> dict[str, Any] | None:
        """The oldest pushed offer still open (its deadline not passed); expired ones go."""
        pending = self.ws_pending[i]
        while pending:
            offer = pending.pop(0)
            try:
                deadline = datetime.fromisoformat(offer["deadline"]).timestamp()
            except (KeyError, TypeError, ValueError):
                return offer  # no readable deadline: the server says if it is too late
            if deadline > time.time():
                return offer
            self.counts["offers_ws_expired"] += 1
        return None

    def _decide(self, i: int, offer: dict[str, Any]) -> bool:
        """Accept or reject the offer; True when the driver now has the trip (on its way)."""
        d = self.fleet.ids[i]
        with self.lock:
            self.metrics.offers_made += 1
            accept = self.fleet.accepts()
        verb = "accept" if accept else "reject"
        trip = self.api.call("POST", f"/v1/offers/{offer['id']}/{verb}", self.driver_tokens[d])
        if not accept or trip is None:
            return False
        with self.lock:
            self.counts["assigned"] += 1
            self.metrics.offers_accepted += 1
            self.fleet.phase[i] = Phase.to_pickup
            p = trip["pickup"]
            arrive = self.fleet.go_to(i, p["lat"], p["lng"], self.now())
        self.at(arrive, lambda: self._step(i, trip, "arrive"))
        return True

    def _idle(self, i: int) -> Callable[[], None]:
        """What an idle driver does next: poll, or take a pushed offer."""
        return (lambda: self._ws_next(i)) if i in self.ws_index else (lambda: self._poll(i))

    def _dropoff_location(self, i: int, token: str, lat: float, lng: float) -> None:
        """The drop-off point, applied before `complete`: a frame the server acked on the
        WebSocket (or, when that fails, the REST call), a POST for a polling driver."""
        if self.ws is not None and i in self.ws_index:
            if self.ws.send_location_acked(i, lat, lng):
                return
            with self.lock:
                self.counts["ws_dropoff_by_post"] += 1
        self.api.call("POST", "/v1/drivers/me/location", token, {"lat": lat, "lng": lng})

    def _step(self, i: int, trip: dict[str, Any], step: str) -> None:
        d, tid = self.fleet.ids[i], trip["id"]
        token = self.driver_tokens[d]
        if step == "complete":
            q = trip["dropoff"]
            self._dropoff_location(i, token, q["lat"], q["lng"])
        got = self.api.call("POST", f"/v1/trips/{tid}/{step}", token)
        if step == "complete" and got is not None:
            self._ended(tid, "completed")
            self._rate(tid, token, str(got["rider_id"]))
        with self.lock:
            now = self.now()
            if got is None or step == "complete":
                self.fleet.phase[i] = Phase.idle
                nxt: tuple[float, Callable[[], None]] = (now, self._idle(i))
            elif step == "arrive":
                self.fleet.phase[i] = Phase.waiting
                nxt = (now + self.riders.boarding_s(), lambda: self._step(i, trip, "start"))
            else:
                self.fleet.phase[i] = Phase.on_trip
                q = trip["dropoff"]
                at = self.fleet.go_to(i, q["lat"], q["lng"], now, loaded=True)
                nxt = (at, lambda: self._step(i, trip, "complete"))
        self.at(*nxt)

    def _rate(self, trip_id: str, driver_token: str, rider_id: str) -> None:
        """Both parties rate a finished trip, as the apps prompt them to (the worker applies
        the ratings)."""
        with self.lock:
            rider_token = self.rider_tokens.get(rider_id)
        path = f"/v1/trips/{trip_id}/rating"
        self.api.call("POST", path, driver_token, {"stars": 5})
        if rider_token is not None:
            self.api.call("POST", path, rider_token, {"stars": 5})

    # --- riders ----------------------------------------------------------------------------

    def _rider(self) -> str:
        """A rider with no open trip, reserved for one request: a free one from the pool, or a
        new account when every rider is riding or waiting."""
        with self.lock:
            rider = self.rider_pool.take()
        if rider is not None:
            return rider
        rider, token = self.api.sign_up("rider", 1, f"{self.tag}-{next(self.rider_tag)}")[0]
        with self.lock:
            self.rider_tokens[rider] = token
            self.rider_pool.add(rider, free=False)
        return rider

    def _request(self, r: TripRequest) -> None:
        rider = self._rider()
        token = self.rider_tokens[rider]
        body = {"pickup": {"lat": r.pickup_lat, "lng": r.pickup_lng},
                "dropoff": {"lat": r.dropoff_lat, "lng": r.dropoff_lng}}
        with self.lock:
            self.counts["requests"] += 1
        trip = self.api.call("POST", "/v1/trips", token, body)
        if trip is None:
            with self.lock:
                if "open trip" in (self.api.last_reason or ""):
                    self.rider_pool.retire(rider)
                else:
                    self.rider_pool.release(rider)
            return
        tid = trip["id"]
        with self.lock:
            self.counts["created"] += 1
            self.metrics.request(r.pickup_lat, r.pickup_lng)
            self.trips[tid] = (rider, token)
            self.rider_pool.riding(rider, tid)
            self.open.add(tid)
            patience = self.riders.patience_s()
        self._track(trip)
        self.at(self.now() + patience, lambda: self._give_up(tid))

    def _ended(self, tid: str, state: str) -> None:
        """The trip reached `state` (terminal): counted once, and its rider is free again."""
        with self.lock:
            if tid not in self.open:
                return
            self.open.discard(tid)
            self.rider_pool.ended(tid)
            self.counts[state] += 1

    def _track(self, trip: dict[str, Any]) -> None:
        tid = trip["id"]
        if trip["state"] in TERMINAL:
            self._ended(tid, trip["state"])
            return
        wall = REFRESH_WAITING_WALL_S if trip["state"] == "requested" \
            else REFRESH_ASSIGNED_WALL_S
        self.at(self.now() + wall * self.speed, lambda: self._refresh(tid))

    def _token_if_open(self, tid: str) -> str | None:
        """The trip's rider's token while the trip is open (None once it has ended)."""
        with self.lock:
            return self.trips[tid][1] if tid in self.open else None

    def _refresh(self, tid: str) -> None:
        token = self._token_if_open(tid)
        if token is None:
            return
        got = self.api.call("GET", f"/v1/trips/{tid}", token)
        if got is not None:
            self._track(got)
        elif not self.stop.is_set():
            self.at(self.now() + REFRESH_WAITING_WALL_S * self.speed,
                    lambda: self._refresh(tid))

    def _give_up(self, tid: str) -> None:
        token = self._token_if_open(tid)
        if token is None:
            return
        got = self.api.call("GET", f"/v1/trips/{tid}", token)
        if got is None or got["state"] != "requested":
            return
        # A driver may accept between the read and the cancel: that 409 is counted.
        if self.api.call("POST", f"/v1/trips/{tid}/cancel", token,
                         {"reason": "no driver in time"}) is not None:
            self._ended(tid, "cancelled")


def run_http(sc: Scenario, url: str, *, speed: float = 60.0, progress: bool = False,
             service_token: str | None = None, ws_share: float = 0.0) -> SimulationResult:
    return HttpSimulation(sc, url, speed=speed, service_token=service_token,
                          ws_share=ws_share).run(progress)


def run_demo_fleet(url: str, drivers: int = 200, *, riders_per_hour: float = 300.0,
                   stop: threading.Event | None = None, seed: int = 0,
                   service_token: str | None = None, speed: float = 1.0,
                   log_every_s: float = 60.0,
                   ws_share: float = DEMO_WS_SHARE) -> HttpSimulation:
    """Drive a small NYC fleet through the API until `stop` is set: drivers sign up, go
    online, move and report locations (`ws_share` of them, half by default, on the driver
    WebSocket, the others polling), accept most offers and drive trips to the end; riders
    request trips at `riders_per_hour` (simulated time; `speed` simulated seconds per wall
    second, 1 in the demo) from synthetic hotspots, each rider one trip at a time. Every
    `log_every_s` wall seconds it logs what the fleet did so far. Blocks; run it in a thread
    or a process. Returns the simulation (its `summary()`) once stopped."""
    hour = 3600.0
    cfg = SimConfig(drivers=drivers, duration_s=hour, demand_rate=riders_per_hour, seed=seed,
                    reposition="random")
    sim = HttpSimulation(prepare(cfg), url, speed=speed, concurrency=4,
                         service_token=service_token, ws_share=ws_share)
    if stop is not None:
        sim.stop = stop

    def progress() -> None:
        log.info("demo fleet: %s", ", ".join(f"{k} {v}" for k, v in sim.summary().items()))
        sim.at(sim.now() + log_every_s * speed, progress)

    sim.start(sim.sc.plan.requests)
    log.info("demo fleet: %d drivers online (%d on the WebSocket, %d polling), about %.0f "
             "ride requests an hour", drivers, len(sim.ws_index), drivers - len(sim.ws_index),
             riders_per_hour)
    sim.at(log_every_s * speed, progress)
    loop_no = itertools.count(1)
    while not sim.stop.is_set():
        k = next(loop_no)
        sim.loop(functools.partial(lambda k: sim.now() >= k * hour, k))
        if sim.stop.is_set():
            break
        more = build_demand(sim.sc.city, None, duration_s=hour, rate_per_hour=riders_per_hour,
                            seed=seed + k)
        sim.schedule_requests(more.requests, k * hour)
        with sim.lock:
            sim.trips = {t: v for t, v in sim.trips.items() if t in sim.open}
    sim.pool.shutdown(wait=False, cancel_futures=True)
    sim.close_ws()
    return sim
