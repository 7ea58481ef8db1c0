"""Benchmark of the connection edge (issue 12): how many driver WebSockets, long-polls and rider
trip streams one API process holds on this machine, and how prompt it stays meanwhile.

Starts one `ridehail serve` on a free port (embedded mode, SQLite in a temporary folder, rate
limits off), or aims at a running server with `--target`. The load comes from asyncio clients
(aiohttp, uvloop when present) in separate processes (`--clients`, 2 by default); each holds
its share of:

- driver WebSockets (`/v1/drivers/me/ws?access_token=`), each sending a location frame every
  4 s (first one at a random instant of the first 4 s);
- long-polls `GET /v1/drivers/me/offers?wait=25`, re-issued as they return, by online drivers
  that have no WebSocket (and send no location, so dispatch never offers them a trip);
- rider trip streams `GET /v1/trips/{id}/events` (Server-Sent Events): each rider requests a
  trip at the spot where one of the client's WebSocket drivers is parked, that driver gets the
  offer on its socket and accepts it once the rider's stream is open; the trip then stays
  driver_assigned (the stream carries the driver's position) until the end.

Each client process has a zone of its own (NYC boroughs more than the dispatch radius apart),
so every offer goes to a driver of the process that requested the trip. With everything held,
for `--duration` seconds, it measures:

- `GET /health` (10/s) and `GET /v1/vehicles/nearby` as a rider (200/s), open loop: latency
  counts from the scheduled send time, so a slow server cannot hide its queue;
- offer push: probe trips (5/s) requested at an idle WebSocket driver's spot; latency = the
  offer frame's arrival minus the offer's `created_at` (dispatch's decision; same clock);
- rider push: the driver accepts, then reports arrival (`POST /v1/offers/{id}/accept`,
  `POST /v1/trips/{id}/arrive`); latency = the `event: trip` arrival minus the trip's
  `assigned_at` / `arrived_at`; then the rider cancels (the stream closes, the driver is free);
- memory per connection: the server's RSS (its process tree, /proc/<pid>/status VmRSS) with
  everything held minus before any connection, divided by the connections held;
- CPU: client processes and server from /proc/<pid>/stat over the measured window, and what
  the rest of the machine used meanwhile (/proc/stat: other processes, the kernel's network
  work); the run first waits (`--wait-quiet`, up to 10 min) for the machine to be idle.

While connections ramp up (`--connect-rate` new ones per second, 200 by default), /health is
probed once a second: `max_held_with_health_under_1s` is the most connections held at a moment
it answered within 1 s, and if it has not for `--give-up-after` seconds (120) the clients stop
opening connections (`ramp_aborted_at`) and the hold is measured with what is held. Timed
requests stay open loop up to 500 waiting per client process and kind; past that, requests are
counted as not sent. A state change the server confirmed whose event did not reach the rider's
stream within 10 s is listed in `missed_pushes`.

Then it serves the same Flask app under gunicorn's threaded worker (gthread, 1 worker, 32
threads, as ridehail/server.py did before the edge) and opens long-polls one at a time until
`/health` takes more than 1 s: `threaded_max_connections` is how many it held before that.

Accounts: one argon2 hash (accounts.passwords, the production parameters) shared by every
seeded account, written with the accounts repository through the app's unit of work
(ridehail.units), one bearer token each (accounts.tokens), in one transaction; signing 13,000
accounts up over HTTP would time argon2, not the edge. With our own server the drivers are
also written online (dispatch's DriverState), as bench/api.py does; with `--target` the
accounts go into `--target-db` and each driver goes online with `PUT /v1/drivers/me/status`.

Prints one JSON document with a top-level `summary`.

    python bench/connections.py [--quick] [--out bench/results/connections.json]
    python bench/connections.py --target http://127.0.0.1:PORT --target-db sqlite:///... \\
        [--target-pid PID] [--riders 0] [--skip-threaded]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_s, describe, machine_busy_s  # noqa: E402
from tests.conftest import free_port, wait_http  # noqa: E402

TARGETS: dict[str, float] = {
    "ws_connections": 10_000, "longpolls": 2_000, "rider_streams": 1_000,
    "health_p99_ms": 50.0, "nearby_p99_ms": 50.0, "nearby_rps": 200.0,
    "offer_push_p99_ms": 100.0, "rider_push_p99_ms": 200.0, "kb_per_connection": 50.0,
}
# Zone centres, pairwise more than 10 km apart (the dispatch radius is 5 km), each a box of
# +-ZONE_HALF degrees (about 2.2 km) sampled inside the service area.
ZONES = [(40.758, -73.985), (40.705, -73.800), (40.845, -73.880), (40.640, -73.950),
         (40.585, -74.150)]
ZONE_HALF = (0.020, 0.026)
LOCATION_EVERY_S = 4.0
LONGPOLL_WAIT_S = 25
HEALTH_RPS = 10.0
PROBE_RPS = 5.0
THREADED_THREADS = 32
MAX_INFLIGHT = 500  # per client process and kind of timed request (health, nearby)


def log(msg: str) -> None:
    print(f"[connections {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile(who: str) -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (every socket is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log(f"{who}: raised the file-descriptor soft limit from {soft} to {hard}")
        return int(hard)
    log(f"{who}: file-descriptor limit {soft} (already the hard limit)")
    return int(soft)


def stats_ms(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values)
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


# --- /proc: the server's memory and CPU, the clients' CPU ------------------------------------

def proc_tree(pid: int) -> list[int]:
    """`pid` and its descendants (gunicorn's master has its worker under it)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pid: int) -> int:
    total = 0
    for p in proc_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def wait_quiet(max_wait_s: float, busy_cores: float = 0.3) -> float:
    """Wait (at most max_wait_s) until the rest of the machine uses under `busy_cores` over
    5 s: the server and its clients share the 2 cores with anything else running. Returns
    the busy cores last seen."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0 = machine_busy_s()
        time.sleep(5)
        busy = (machine_busy_s() - b0) / 5
        if busy < busy_cores or time.monotonic() >= deadline:
            return round(busy, 2)
        log(f"the machine is busy ({busy:.2f} cores): waiting for it to be quiet")


# --- accounts --------------------------------------------------------------------------------

def zone_points(zone: int, n: int, seed: int) -> list[tuple[float, float]]:
    """n points of the zone's box that lie inside the service area."""
    from ridehail.settings import DEFAULT_SERVICE_AREA
    from trips.area import ServiceArea

    area = ServiceArea.from_geojson(DEFAULT_SERVICE_AREA)
    lat0, lng0 = ZONES[zone % len(ZONES)]
    rng = random.Random(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        lat = lat0 + rng.uniform(-ZONE_HALF[0], ZONE_HALF[0])
        lng = lng0 + rng.uniform(-ZONE_HALF[1], ZONE_HALF[1])
        if area.contains(lat, lng):
            out.append((round(lat, 6), round(lng, 6)))
    return out


def seed_accounts(db_url: str, drivers: int, riders: int, *, online: bool
                  ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], float]:
    """Drivers and riders with one bearer token each, in one transaction. Returns (drivers,
    riders) as (account id, token), and the seconds it took."""
    from accounts import passwords
    from accounts.model import Account, Role, Vehicle, VehicleClass
    from accounts.tokens import new_token, token_hash
    from dispatch.model import DriverState, DriverStatus
    from ridehail.kernel import ids
    from ridehail.kernel.db import make_engine
    from ridehail.units import sql_uow_factory

    t0 = time.perf_counter()
    ids.configure(1023)  # a worker id of its own: never one a server process derives
    shared_hash = passwords.hash_password("one bench password for every account")
    run = f"{random.getrandbits(32):08x}"
    now, now_s = datetime.now(UTC), time.time()
    vehicle = Vehicle(make="Toyota", model="Prius", plate="BENCH-1", seats=4,
                      vehicle_class=VehicleClass("standard"))
    engine = make_engine(db_url)
    out_d: list[tuple[str, str]] = []
    out_r: list[tuple[str, str]] = []
    with sql_uow_factory(engine)() as uow:
        for role, n, out in ((Role.driver, drivers, out_d), (Role.rider, riders, out_r)):
            for i in range(n):
                account_id = ids.new_id()
                uow.accounts.add(Account(
                    id=account_id, role=role, name=f"Bench {role.value} {i}",
                    email=f"{role.value}-{i}-{run}@bench.invalid", password_hash=shared_hash,
                    created_at=now, vehicle=vehicle if role == Role.driver else None))
                token = new_token()
                uow.accounts.add_token(token_hash(token), account_id, now)
                if online and role == Role.driver:
                    uow.drivers.add(DriverState(account_id, "standard", DriverStatus.available,
                                                now_s))
                out.append((account_id, token))
        uow.commit()
    engine.dispose()
    return out_d, out_r, time.perf_counter() - t0


# --- the client process ----------------------------------------------------------------------

@dataclass
class Plan:
    index: int
    url: str
    ws: list[tuple[str, str, float, float]]  # driver id, token, parked at (lat, lng)
    longpolls: list[str]  # driver tokens
    riders: list[str]  # rider tokens: one held trip and stream each
    probe_riders: list[str]
    nearby_token: str
    dropoffs: list[tuple[float, float]]
    nearby_points: list[tuple[float, float]]
    health_rps: float
    nearby_rps: float
    probe_rps: float
    go_online: bool  # PUT /v1/drivers/me/status first (a server we did not seed)
    connect_rate: float  # new connections per second, this process
    seed: int


@dataclass
class Driver:
    id: str
    token: str
    lat: float
    lng: float
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    located: asyncio.Event = field(default_factory=asyncio.Event)  # first location acked
    sent: collections.deque[float] = field(default_factory=collections.deque)
    busy: bool = False


@dataclass
class Trip:
    id: str
    rider: str
    probe: bool
    offer_id: str | None = None
    driver: Driver | None = None
    offered: asyncio.Event = field(default_factory=asyncio.Event)
    stream_ready: asyncio.Event = field(default_factory=asyncio.Event)
    stream_closed: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict[str, asyncio.Event] = field(
        default_factory=lambda: collections.defaultdict(asyncio.Event))
    streaming: bool = False
    close_reason: str | None = None


class Client:
    def __init__(self, plan: Plan, ctl: dict[str, Any]) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.plan = plan
        self.ctl = ctl
        self.url = plan.url
        self.rng = random.Random(plan.seed)
        self.phase = "setup"
        self.stopping = False
        self.samples: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list))
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.ws_open = 0
        self.lp_inflight = 0
        self.sse_open = 0
        self.trips: dict[str, Trip] = {}
        self.orphans: dict[str, tuple[Driver, str, float]] = {}
        self.seen_offers: set[str] = set()
        self.drivers = [Driver(d, t, lat, lng) for d, t, lat, lng in plan.ws]
        self.idle: collections.deque[Driver] = collections.deque()
        self.free_probe_riders = collections.deque(plan.probe_riders)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.inflight: collections.Counter[str] = collections.Counter()
        self.missed: list[dict[str, Any]] = []
        self.connect_slots: asyncio.Semaphore | None = None
        self.next_connect = 0.0

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def sample(self, name: str, value_ms: float) -> None:
        self.samples[self.phase][name].append(value_ms)

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def pace(self) -> None:
        """One new connection per 1/connect_rate seconds (this process's share of the ramp)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self.next_connect)
        self.next_connect = slot + 1.0 / self.plan.connect_rate
        if slot > now:
            await asyncio.sleep(slot - now)

    # --- driver WebSockets -------------------------------------------------------------------

    async def driver_ws(self, d: Driver) -> None:
        aiohttp = self.aiohttp
        assert self.connect_slots is not None
        ws = None
        for attempt in range(4):
            await self.pace()
            if self.aborted():
                self.counts["ws_not_attempted_ramp_aborted"] += 1
                return
            async with self.connect_slots:
                try:
                    if self.plan.go_online and attempt == 0:
                        await self.put_online(d.token)
                    ws = await self.session.ws_connect(
                        f"{self.url}/v1/drivers/me/ws?access_token={d.token}", autoping=True,
                        heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_receive=None,
                                                                        ws_close=5.0))
                    break
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    self.errors[f"ws_connect:{type(exc).__name__}:{str(exc)[:60]}"] += 1
            await asyncio.sleep(1.0 + attempt)
        if ws is None:
            self.counts["ws_connect_failed"] += 1
            return
        self.ws_open += 1
        d.connected.set()
        sender = self.spawn(self.ws_sender(ws, d))
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                arrival = time.time()
                frame = json.loads(msg.data)
                kind = frame.get("type")
                if kind == "ack":
                    if d.sent:
                        self.sample("ws_ack", (time.perf_counter() - d.sent.popleft()) * 1000)
                    d.located.set()
                elif kind == "offer":
                    self.on_offer(d, frame["offer"], arrival)
                elif kind == "error":
                    if d.sent:
                        d.sent.popleft()
                    self.errors[f"ws_error_frame:{str(frame.get('detail'))[:80]}"] += 1
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.errors[f"ws_read:{type(exc).__name__}"] += 1
        finally:
            sender.cancel()
            self.ws_open -= 1
            if not self.stopping:
                self.counts[f"ws_closed_by_server:{ws.close_code}"] += 1

    async def ws_sender(self, ws: Any, d: Driver) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + self.rng.uniform(0, LOCATION_EVERY_S)
        k = 0
        while True:
            due = start + k * LOCATION_EVERY_S
            k += 1
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            ts = datetime.now(UTC).isoformat()
            d.sent.append(time.perf_counter())
            await ws.send_str(f'{{"type":"location","lat":{d.lat},"lng":{d.lng},"ts":"{ts}"}}')
            self.counts[f"ws_location_frames_{self.phase}"] += 1

    async def put_online(self, token: str) -> None:
        try:
            async with self.session.put(f"{self.url}/v1/drivers/me/status",
                                        headers=self.auth(token), json={"status": "online"}) as r:
                await r.read()
                if r.status != 200:
                    self.errors[f"go_online:{r.status}"] += 1
        except (TimeoutError, self.aiohttp.ClientError, OSError) as exc:
            self.errors[f"go_online:{type(exc).__name__}"] += 1

    def on_offer(self, d: Driver, offer: dict[str, Any], arrival: float) -> None:
        if offer["id"] in self.seen_offers:  # sent again (on connect, or with a later wake-up)
            self.counts["offer_frames_repeated"] += 1
            return
        self.seen_offers.add(offer["id"])
        self.sample("offer_push", (arrival - epoch(offer["created_at"])) * 1000)
        trip = self.trips.get(offer["trip_id"])
        if trip is None:  # the offer frame beat the POST /v1/trips response
            self.orphans[offer["trip_id"]] = (d, offer["id"], arrival)
            return
        self.offered(trip, d, offer["id"])

    def offered(self, trip: Trip, d: Driver, offer_id: str) -> None:
        trip.driver, trip.offer_id = d, offer_id
        d.busy = True
        trip.offered.set()

    # --- long-polls ----------------------------------------------------------------------------

    async def long_poll(self, token: str) -> None:
        aiohttp = self.aiohttp
        await self.pace()
        if self.aborted():
            return
        if self.plan.go_online:
            await self.put_online(token)
        timeout = aiohttp.ClientTimeout(total=LONGPOLL_WAIT_S + 35)
        while not self.stopping:
            t0 = time.perf_counter()
            self.lp_inflight += 1
            status = 0
            try:
                async with self.session.get(
                        f"{self.url}/v1/drivers/me/offers?wait={LONGPOLL_WAIT_S}",
                        headers=self.auth(token), timeout=timeout) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.errors[f"longpoll:{type(exc).__name__}"] += 1
            finally:
                self.lp_inflight -= 1
            if self.stopping:
                return
            self.sample("longpoll_duration", (time.perf_counter() - t0) * 1000)
            self.counts[f"longpoll_status:{status}"] += 1
            if status != 200:
                await asyncio.sleep(1.0)

    # --- riders: trips and their streams -------------------------------------------------------

    async def request_trip(self, rider: str, d: Driver, probe: bool) -> Trip | None:
        drop = self.rng.choice(self.plan.dropoffs)
        body = {"pickup": {"lat": d.lat, "lng": d.lng}, "dropoff": {"lat": drop[0],
                                                                  "lng": drop[1]}}
        t0 = time.perf_counter()
        try:
            async with self.session.post(f"{self.url}/v1/trips", headers=self.auth(rider),
                                         json=body) as r:
                data = await r.json(content_type=None)
                if r.status != 201:
                    self.errors[f"trip_request:{r.status}:{str(data)[:80]}"] += 1
                    return None
        except (TimeoutError, self.aiohttp.ClientError, OSError, ValueError) as exc:
            self.errors[f"trip_request:{type(exc).__name__}"] += 1
            return None
        self.sample("trip_request", (time.perf_counter() - t0) * 1000)
        trip = Trip(data["id"], rider, probe)
        self.trips[trip.id] = trip
        orphan = self.orphans.pop(trip.id, None)
        if orphan is not None:
            self.offered(trip, orphan[0], orphan[1])
        return trip

    async def stream(self, trip: Trip) -> None:
        aiohttp = self.aiohttp
        try:
            async with self.session.get(
                    f"{self.url}/v1/trips/{trip.id}/events",
                    headers={**self.auth(trip.rider), "Accept": "text/event-stream"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
                if r.status != 200:
                    self.counts[f"stream_refused:{r.status}"] += 1
                    return
                trip.streaming = True
                self.sse_open += 1
                try:
                    await self.read_events(trip, r.content)
                finally:
                    self.sse_open -= 1
                    if not self.stopping and trip.close_reason is None:
                        self.counts["stream_ended_without_close_event"] += 1
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.errors[f"stream:{type(exc).__name__}"] += 1
        finally:
            trip.stream_ready.set()  # no stream: the driver need not wait for it
            trip.stream_closed.set()

    async def read_events(self, trip: Trip, content: Any) -> None:
        event, data, first = "message", [], True
        async for raw in content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b":"):
                self.counts["stream_comments"] += 1
                continue
            if line:
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"event":
                    event = value.decode()
                elif name == b"data":
                    data.append(value)
                continue
            if not data:
                continue
            arrival = time.time()
            payload = json.loads(b"\n".join(data))
            if event == "trip":
                state = payload["state"]
                if first:  # the state on connect: a snapshot, not a push
                    first = False
                    trip.stream_ready.set()
                else:
                    stamp = {"driver_assigned": "assigned_at",
                             "driver_arrived": "arrived_at"}.get(state)
                    if stamp and payload.get(stamp):
                        ms = (arrival - epoch(payload[stamp])) * 1000
                        self.sample("rider_push", ms)
                        self.sample(f"rider_push_{state}", ms)
                self.counts[f"stream_trip_events:{state}"] += 1
                trip.seen[state].set()
            elif event == "location":
                self.counts["stream_location_events"] += 1
                if payload.get("ts"):
                    self.sample("rider_location_age", (arrival - epoch(payload["ts"])) * 1000)
            elif event == "close":
                trip.close_reason = str(payload.get("reason"))
                self.counts[f"stream_close:{trip.close_reason}"] += 1
            event, data = "message", []

    async def wait(self, ev: asyncio.Event, seconds: float, what: str) -> bool:
        try:
            await asyncio.wait_for(ev.wait(), seconds)
            return True
        except TimeoutError:
            self.counts[f"timeout:{what}"] += 1
            return False

    async def post(self, path: str, token: str, what: str) -> bool:
        try:
            async with self.session.post(f"{self.url}{path}", headers=self.auth(token)) as r:
                await r.read()
                if r.status != 200:
                    self.errors[f"{what}:{r.status}"] += 1
                return r.status == 200
        except (TimeoutError, self.aiohttp.ClientError, OSError) as exc:
            self.errors[f"{what}:{type(exc).__name__}"] += 1
            return False

    async def ride(self, rider: str, d: Driver, probe: bool) -> None:
        """Request at d's spot, open the rider's stream, accept once it is open; a probe also
        arrives, then the rider cancels, freeing rider and driver. A ride that fails on the way
        is cancelled too: an offer nobody answers would expire and go to the next driver, and
        the next, for as long as there are drivers within the dispatch radius."""
        d.busy = True
        trip = None
        held = False
        try:
            trip = await self.request_trip(rider, d, probe)
            if trip is None:
                return
            self.spawn(self.stream(trip))
            if not await self.wait(trip.offered, 20, "offer"):
                return
            await self.wait(trip.stream_ready, 10, "stream_open")
            assert trip.driver is not None and trip.offer_id is not None
            if not await self.post(f"/v1/offers/{trip.offer_id}/accept", trip.driver.token,
                                   "accept"):
                return
            held = not probe
            if trip.streaming and not await self.wait(trip.seen["driver_assigned"], 10,
                                                      "assigned_event"):
                self.note_missed(trip, "driver_assigned")
            if not probe:
                return
            if await self.post(f"/v1/trips/{trip.id}/arrive", trip.driver.token, "arrive") \
                    and trip.streaming and not await self.wait(trip.seen["driver_arrived"], 10,
                                                               "arrived_event"):
                self.note_missed(trip, "driver_arrived")
        finally:
            if not self.stopping and not held:
                await self.end_ride(trip, rider, d, probe)

    def note_missed(self, trip: Trip, state: str) -> None:
        """A change the server confirmed (200) whose event did not reach the stream in 10 s."""
        if len(self.missed) < 20:
            self.missed.append({"trip_id": trip.id, "missing": state, "phase": self.phase,
                                "stream_open": not trip.stream_closed.is_set(),
                                "seen": sorted(k for k, ev in trip.seen.items() if ev.is_set()),
                                "close_reason": trip.close_reason})

    async def end_ride(self, trip: Trip | None, rider: str, d: Driver, probe: bool) -> None:
        if trip is not None:
            await self.post(f"/v1/trips/{trip.id}/cancel", rider, "cancel")
            if trip.streaming:
                await self.wait(trip.stream_closed, 10, "stream_close")
            self.trips.pop(trip.id, None)
            if trip.driver is not None and trip.driver is not d:
                trip.driver.busy = False
                if probe:
                    self.idle.append(trip.driver)
        d.busy = False
        if probe:
            self.idle.append(d)
            self.free_probe_riders.append(rider)
            self.counts["probes_done"] += 1
        else:
            self.counts["held_ride_failed"] += 1

    # --- probes --------------------------------------------------------------------------------

    async def open_loop(self, rate: float, name: str, fire: Any) -> None:
        if rate <= 0:
            return
        loop = asyncio.get_running_loop()
        t0 = loop.time() + self.rng.uniform(0, 1 / rate)
        i = 0
        while not self.stopping:
            due = t0 + i / rate
            i += 1
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            self.spawn(fire(due, i))

    async def get_timed(self, name: str, due: float, path: str, token: str | None) -> None:
        # Open loop, but not without bound: past MAX_INFLIGHT waiting requests of a kind the
        # server is far behind, and more connections would only add to its queue.
        if self.inflight[name] >= MAX_INFLIGHT:
            self.errors[f"{name}:not_sent_{MAX_INFLIGHT}_already_waiting"] += 1
            self.counts[f"{name}_not_sent_{self.phase}"] += 1
            return
        self.inflight[name] += 1
        self.counts[f"{name}_sent_{self.phase}"] += 1
        try:
            await self.get_timed_once(name, due, path, token)
        finally:
            self.inflight[name] -= 1

    async def get_timed_once(self, name: str, due: float, path: str, token: str | None) -> None:
        loop = asyncio.get_running_loop()
        start, phase = loop.time(), self.phase
        try:
            async with self.session.get(f"{self.url}{path}",
                                        headers=self.auth(token) if token else None) as r:
                await r.read()
                if r.status != 200:
                    self.errors[f"{name}:{r.status}"] += 1
        except (TimeoutError, self.aiohttp.ClientError, OSError, asyncio.CancelledError) as exc:
            # No answer (a timeout, or still waiting when the run stopped): how long it had
            # waited is a lower bound of its latency.
            self.errors[f"{name}:{type(exc).__name__}"] += 1
            self.samples[phase][f"{name}_unanswered"].append((loop.time() - due) * 1000)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        end = loop.time()
        self.sample(name, (end - due) * 1000)
        self.sample(name + "_service", (end - start) * 1000)

    async def health(self, due: float, _i: int) -> None:
        await self.get_timed("health", due, "/health", None)

    async def nearby(self, due: float, i: int) -> None:
        lat, lng = self.plan.nearby_points[i % len(self.plan.nearby_points)]
        await self.get_timed("nearby", due, f"/v1/vehicles/nearby?lat={lat}&lng={lng}"
                             f"&radius_m=2000&limit=10", self.plan.nearby_token)

    async def probe(self, _due: float, _i: int) -> None:
        if not self.free_probe_riders or not self.idle:
            self.counts["probe_skipped_none_free"] += 1
            return
        d = self.idle.popleft()
        if d.busy or not d.located.is_set():
            self.counts["probe_skipped_driver_busy"] += 1
            return
        await self.ride(self.free_probe_riders.popleft(), d, True)

    async def loop_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            t = loop.time()
            await asyncio.sleep(0.1)
            self.sample("client_loop_lag", (loop.time() - t - 0.1) * 1000)

    # --- the run -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        aiohttp = self.aiohttp
        plan = self.plan
        self.connect_slots = asyncio.Semaphore(200)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=60))
        marks: dict[str, float] = {}
        held_counts: list[tuple[int, int, int]] = []
        hold_s = 0.0
        t0 = time.perf_counter()
        self.spawn(self.watch_stop(asyncio.current_task()))
        try:
            for d in self.drivers:
                self.spawn(self.driver_ws(d))
            self.spawn(self.report_counts())
            await self.until(lambda: self.ws_open + self.counts["ws_connect_failed"]
                             >= len(self.drivers) or self.aborted(), 900)
            marks["ws_ramp_s"] = time.perf_counter() - t0
            # Every socket's first location (the first 4 s jittered), so all are on the map.
            located = [d.located.wait() for d in self.drivers if d.connected.is_set()]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*located), LOCATION_EVERY_S + 30)
            t1 = time.perf_counter()
            for token in plan.longpolls if not self.aborted() else []:
                self.spawn(self.long_poll(token))
            await self.until(lambda: self.lp_inflight >= len(plan.longpolls) or self.aborted(),
                             300)
            marks["longpoll_ramp_s"] = time.perf_counter() - t1
            # Held trips: rider i rides with this process's driver i (parked at the pickup).
            t2 = time.perf_counter()
            ready = [d for d in self.drivers if d.located.is_set()]
            slots = asyncio.Semaphore(20)

            async def held(rider: str, d: Driver) -> None:
                async with slots:
                    if not self.aborted():
                        await self.ride(rider, d, False)

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(
                    *(held(r, d) for r, d in zip(plan.riders, ready, strict=False))), 300)
            marks["rider_setup_s"] = time.perf_counter() - t2
            self.idle.extend(d for d in ready if not d.busy)
            self.ctl["ready"].put((plan.index, {"ws_open": self.ws_open,
                                                "longpolls": self.lp_inflight,
                                                "streams": self.sse_open}))
            await self.until(lambda: self.ctl["hold"].is_set(), 3600)
            self.phase = "hold"

            async def sampler() -> None:
                while not self.stopping:
                    held_counts.append((self.ws_open, self.lp_inflight, self.sse_open))
                    await asyncio.sleep(1.0)

            for coro in (sampler(), self.loop_lag(),
                         self.open_loop(plan.health_rps, "health", self.health),
                         self.open_loop(plan.nearby_rps, "nearby", self.nearby),
                         self.open_loop(plan.probe_rps, "probe", self.probe)):
                self.spawn(coro)
            hold_t0 = time.perf_counter()
            await self.until(lambda: self.ctl["stop"].is_set(), 3600)
            hold_s = time.perf_counter() - hold_t0
            self.phase = "stop"
            self.stopping = True
        except asyncio.CancelledError:  # the parent said stop before the hold (watch_stop)
            self.counts["stopped_before_hold"] += 1
        finally:
            self.stopping = True
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=15)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.close(), 15)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        hc = np.asarray(held_counts or [(0, 0, 0)])
        return {
            "index": plan.index, "marks": marks, "hold_s": hold_s,
            "held_min": [int(x) for x in hc.min(axis=0)],
            "held_median": [float(x) for x in np.median(hc, axis=0)],
            "samples": {ph: dict(v) for ph, v in self.samples.items()},
            "counts": dict(self.counts), "errors": dict(self.errors),
            "orphan_offers": len(self.orphans), "missed_pushes": self.missed,
            "cpu_s_total": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
        }

    async def watch_stop(self, main: asyncio.Task[Any] | None) -> None:
        """The parent may say stop at any stage (an error, Ctrl-C): stop the ramp too."""
        while not self.ctl["stop"].is_set():
            await asyncio.sleep(0.2)
        if main is not None and self.phase == "setup":
            main.cancel()

    def aborted(self) -> bool:
        """The parent gave up the ramp (the server stopped answering /health)."""
        return bool(self.ctl["abort"].is_set())

    async def report_counts(self) -> None:
        """What this process holds, for the parent's ramp log and watchdog."""
        counts = self.ctl["counts"]
        i = 3 * self.plan.index
        while True:
            counts[i], counts[i + 1], counts[i + 2] = self.ws_open, self.lp_inflight, self.sse_open
            await asyncio.sleep(0.5)

    async def until(self, cond: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not cond() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def client_main(plan: Plan, ctl: dict[str, Any]) -> None:
    raise_nofile(f"client {plan.index} (pid {os.getpid()})")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        ctl["results"].put(asyncio.run(Client(plan, ctl).run()))
    except BaseException as exc:
        ctl["results"].put({"index": plan.index, "failed": repr(exc)})
        raise


# --- the servers -----------------------------------------------------------------------------

class Server:
    """`ridehail serve` on a free port, SQLite in a temporary folder, embedded mode."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = f"sqlite:///{tmp / 'bench.db'}"
        self.env = {**os.environ, "RIDEHAIL_DATABASE_URL": self.db, "RIDEHAIL_VAR_DIR": str(tmp),
                    "RIDEHAIL_PORT": str(self.port), "RIDEHAIL_LOG_LEVEL": "WARNING",
                    "RIDEHAIL_WORKERS": "1",
                    # The load comes from one client address; the limits are not measured.
                    "RIDEHAIL_RATE_LIMIT_ENABLED": "false"}
        self.env.pop("RIDEHAIL_REDIS_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def migrate(self) -> None:
        subprocess.run([sys.executable, "-m", "ridehail.cli", "db", "upgrade"], env=self.env,
                       cwd=ROOT, check=True, capture_output=True)

    def start(self, argv: list[str] | None = None) -> None:
        with open(self.tmp / "server.log", "wb") as out:
            self.proc = subprocess.Popen(argv or [sys.executable, "-m", "ridehail.cli", "serve"],
                                         env=self.env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)
        try:
            wait_http(self.url + "/health", 120, self.proc)
        except AssertionError as exc:
            raise SystemExit(f"server did not start: {exc}; log: "
                             f"{(self.tmp / 'server.log').read_text()[-2000:]}") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


# gunicorn's threaded worker serving the Flask app, as ridehail/server.py did before the edge
# (`git show 185c0ee:ridehail/server.py`): one worker, 32 threads.
_GTHREAD = """
import sys
from gunicorn.app.base import BaseApplication
from ridehail.app import create_app, shutdown
from ridehail.settings import Settings

class Threaded(BaseApplication):
    def load_config(self):
        def worker_exit(_server, worker):
            app = getattr(worker, "wsgi", None)
            if app is not None:
                shutdown(app)
        for key, value in {"bind": sys.argv[1], "workers": 1, "worker_class": "gthread",
                           "threads": int(sys.argv[2]), "timeout": 120, "graceful_timeout": 5,
                           "keepalive": 5, "accesslog": None, "loglevel": "warning",
                           "worker_exit": worker_exit, "preload_app": False,
                           "control_socket_disable": True}.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        return create_app(Settings.from_env(), migrate=False)

Threaded().run()
"""


def threaded_max(quick: bool) -> dict[str, Any]:
    """Long-polls (wait=30) opened one at a time on the gthread server until /health takes
    more than 1 s; how many it held while /health still answered within 1 s."""
    tmp = Path(tempfile.mkdtemp(prefix="ridehail-bench-gthread-"))
    srv = Server(tmp)
    srv.migrate()
    drivers, _riders, _s = seed_accounts(srv.db, THREADED_THREADS * 2 + 8, 0, online=True)
    srv.start([sys.executable, "-c", _GTHREAD, f"127.0.0.1:{srv.port}", str(THREADED_THREADS)])
    steps: list[dict[str, Any]] = []
    held_ok = 0
    stop = threading.Event()

    def hold(token: str) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{srv.url}/v1/drivers/me/offers?wait=30", timeout=90,
                         headers={"Authorization": f"Bearer {token}"})

    try:
        for n, (_id, token) in enumerate(drivers, start=1):
            threading.Thread(target=hold, args=(token,), daemon=True).start()
            time.sleep(0.3)  # the long-poll reaches the server and takes its thread
            t = time.perf_counter()
            try:
                ok = requests.get(srv.url + "/health", timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            ms = (time.perf_counter() - t) * 1000
            steps.append({"longpolls": n, "health_ms": round(ms, 1), "answered": ok})
            if not ok or ms > 1000:
                break
            held_ok = n
    finally:
        stop.set()
        srv.stop()
    return {"server": f"gunicorn gthread, 1 worker, {THREADED_THREADS} threads, "
                      "ridehail.app:create_app (the Flask app, as before the edge)",
            "max_connections": held_ok, "steps": steps}


# --- the parent ------------------------------------------------------------------------------

def split(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i::n] for i in range(n)]


def merge(results: list[dict[str, Any]], phase: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    for r in results:
        for name, values in r["samples"].get(phase, {}).items():
            out[name].extend(values)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    busy_before = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    machine = describe(load_at_start)  # bench/machine.py
    nofile = raise_nofile(f"bench (pid {os.getpid()})")
    n_clients = args.clients
    server: Server | None = None
    notes: list[str] = []
    if args.target:
        url, db, server_pid = args.target.rstrip("/"), args.target_db, args.target_pid
        if not db:
            raise SystemExit("--target needs --target-db (the accounts are written there)")
        server_desc = f"{url} (given with --target)" + (f": {args.label}" if args.label else "")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="ridehail-bench-conn-"))
        server = Server(tmp)
        server.migrate()
        url, db = server.url, server.db
        server_desc = ("ridehail serve (embedded mode, SQLite, rate limits off), "
                       f"HEAD {git_head()}")
    n_ws, n_lp, n_riders = args.drivers, args.longpolls, args.riders
    probes_per_client = 20
    total_drivers = n_ws + n_lp
    total_riders = n_riders + probes_per_client * n_clients + 1
    log(f"seeding {total_drivers} drivers and {total_riders} riders into {db}")
    drivers, riders, seed_s = seed_accounts(db, total_drivers, total_riders,
                                            online=server is not None)
    log(f"seeded in {seed_s:.1f} s")
    try:
        if server is not None:
            log(f"starting the server on {url}")
            server.start()
            assert server.proc is not None
            server_pid = server.proc.pid
        ws_drivers, lp_drivers = drivers[:n_ws], drivers[n_ws:]
        held_riders = [t for _i, t in riders[:n_riders]]
        probe_riders = [t for _i, t in riders[n_riders:-1]]
        nearby_token = riders[-1][1]
        plans = []
        for k, (ws_part, lp_part, rider_part, probe_part) in enumerate(zip(
                split(ws_drivers, n_clients), split(lp_drivers, n_clients),
                split(held_riders, n_clients), split(probe_riders, n_clients), strict=True)):
            homes = zone_points(k, len(ws_part) + 400, seed=k)
            plans.append(Plan(
                index=k, url=url,
                ws=[(d, t, *homes[i]) for i, (d, t) in enumerate(ws_part)],
                longpolls=[t for _d, t in lp_part], riders=rider_part, probe_riders=probe_part,
                nearby_token=nearby_token, dropoffs=homes[len(ws_part):len(ws_part) + 200],
                nearby_points=homes[len(ws_part) + 200:],
                health_rps=HEALTH_RPS / n_clients, nearby_rps=args.nearby_rps / n_clients,
                probe_rps=PROBE_RPS / n_clients, go_online=server is None,
                connect_rate=args.connect_rate / n_clients, seed=100 + k))
        time.sleep(1.0)
        rss_base = rss_kb(server_pid) if server_pid else None
        log(f"server RSS before connections: {rss_base} KB")
        results, held, ready_counts, hold_meta = drive_clients(plans, url, server_pid, args)
        rss_held = hold_meta.get("rss_end_kb")
    finally:
        if server is not None:
            server.stop()
    threaded = None if args.skip_threaded else threaded_max(args.quick)
    if threaded is not None:
        log(f"threaded server: held {threaded['max_connections']} long-polls before /health "
            f"took more than 1 s")

    failed = [r for r in results if "failed" in r]
    if failed:
        notes.append(f"client processes failed: {failed}")
    ok = [r for r in results if "failed" not in r]
    hold = merge(ok, "hold")
    setup = merge(ok, "setup")
    ws_held, lp_held, sse_held = (int(sum(r["held_min"][i] for r in ok)) for i in range(3))
    conns = ws_held + lp_held + sse_held
    kb_per = (round((rss_held - rss_base) / conns, 2)
              if rss_held is not None and rss_base is not None and conns else None)
    health = stats_ms(hold["health"] + hold["health_unanswered"])
    near = stats_ms(hold["nearby"] + hold["nearby_unanswered"])
    offer, rider = stats_ms(hold["offer_push"]), stats_ms(hold["rider_push"])
    hold_s = max((r["hold_s"] for r in ok), default=0.0)
    nearby_rps = len(hold["nearby"]) / hold_s if hold_s else 0.0
    counts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    for r in ok:
        counts.update(r["counts"])
        errors.update(r["errors"])
    summary: dict[str, Any] = {
        "ws_connections": ws_held, "longpolls": lp_held, "rider_streams": sse_held,
        "health_p99_ms": health["p99_ms"], "nearby_p99_ms": near["p99_ms"],
        "nearby_rps": round(nearby_rps, 1),
        # Answered / sent in the hold; with any unanswered the p99 above counts their wait so
        # far (a lower bound), and requests not sent (500 already waiting) are not in it.
        "health_answered": f"{len(hold['health'])}/{counts.get('health_sent_hold', 0)}",
        "nearby_answered": f"{len(hold['nearby'])}/{counts.get('nearby_sent_hold', 0)}",
        "offer_push_p99_ms": offer["p99_ms"], "rider_push_p99_ms": rider["p99_ms"],
        "kb_per_connection": kb_per,
        "max_held_with_health_under_1s": hold_meta.get("ramp", {}).get(
            "max_held_with_health_under_1s"),
        "ramp_aborted_at": hold_meta.get("ramp", {}).get("aborted_at"),
        "threaded_max_connections": threaded["max_connections"] if threaded else None,
        "client_cpu_share": hold_meta.get("client_cpu_share"),
        "other_cpu_cores": hold_meta.get("other_cpu_cores"),
        "client_cpu_cores": hold_meta.get("client_cpu_cores"),
        "server_cpu_cores": hold_meta.get("server_cpu_cores"),
        "targets": TARGETS,
    }
    # What one location frame costs the server, all its other work in the hold included.
    frames = counts.get("ws_location_frames_hold", 0)
    server_cpu = hold_meta.get("server_cpu_s")
    summary["server_cpu_ms_per_location_frame"] = (
        round(server_cpu * 1000 / frames, 3) if frames and server_cpu is not None else None)
    summary["meets"] = meets(summary)
    notes.extend(miss_notes(summary, {**errors, **counts}))
    if args.profile:
        notes.append(f"py-spy profile of the server during the hold: {args.profile}")
    summary["notes"] = notes
    return {
        "workload": {
            "server": server_desc, "clients": n_clients, "quick": args.quick,
            "drivers_ws": n_ws, "longpolls": n_lp, "riders": n_riders,
            "location_every_s": LOCATION_EVERY_S, "longpoll_wait_s": LONGPOLL_WAIT_S,
            "health_rps": HEALTH_RPS, "nearby_rps": args.nearby_rps,
            "probe_trips_per_s": PROBE_RPS, "hold_s": round(hold_s, 1),
            "client": "aiohttp" + (" + uvloop" if has_uvloop() else "") +
                      f", {n_clients} processes, same machine",
            "accounts": "written with the accounts repository in one transaction, one "
                        "argon2 hash shared (accounts.passwords), one token each; drivers "
                        + ("written online" if server is not None else
                           "put online with PUT /v1/drivers/me/status"),
            "seed_s": round(seed_s, 1), "nofile_limit": nofile,
            "loadavg_at_start": load_at_start, "busy_cores_before_start": busy_before,
            "machine": machine,
        },
        "ramp": {"per_client": [r.get("marks") for r in ok], "held_at_ready": ready_counts,
                 **hold_meta.get("ramp", {})},
        "held": {"min_during_hold": {"ws": ws_held, "longpolls": lp_held, "streams": sse_held},
                 "median_during_hold": [r["held_median"] for r in ok],
                 "samples_per_client": held},
        "latency_hold": {name: stats_ms(values) for name, values in sorted(hold.items())},
        "latency_setup": {name: stats_ms(values) for name, values in sorted(setup.items())},
        "memory": {"server_rss_before_kb": rss_base, "server_rss_held_kb": rss_held,
                   "server_rss_samples_kb": hold_meta.get("rss_samples_kb"),
                   "connections": conns, "kb_per_connection": kb_per,
                   "client_maxrss_kb": [r["maxrss_kb"] for r in ok]},
        "cpu": {k: hold_meta.get(k) for k in ("client_cpu_s", "server_cpu_s", "hold_wall_s",
                                               "client_cpu_cores", "server_cpu_cores",
                                               "other_cpu_cores", "client_cpu_share")}
               | {"client_cpu_s_whole_run": [round(r["cpu_s_total"], 1) for r in ok]},
        "counts": dict(sorted(counts.items())), "errors": dict(sorted(errors.items())),
        "orphan_offers": sum(r["orphan_offers"] for r in ok),
        "missed_pushes": [m for r in ok for m in r["missed_pushes"]],
        "threaded": threaded, "wall_s": round(time.perf_counter() - started, 1),
        "summary": summary,
    }


def drive_clients(plans: list[Plan], url: str, server_pid: int | None,
                  args: argparse.Namespace
                  ) -> tuple[list[dict[str, Any]], Any, list[Any], dict[str, Any]]:
    ctx = mp.get_context("spawn")
    ctl: dict[str, Any] = {"ready": ctx.Queue(), "results": ctx.Queue(), "hold": ctx.Event(),
                           "stop": ctx.Event(), "abort": ctx.Event(),
                           "counts": ctx.Array("i", 3 * len(plans), lock=False)}
    procs = [ctx.Process(target=client_main, args=(p, ctl), name=f"bench-client-{p.index}")
             for p in plans]
    for p in procs:
        p.start()
    meta: dict[str, Any] = {}
    ready: list[Any] = []
    results: list[dict[str, Any]] = []
    try:
        ramp = watch_ramp(procs, ctl, url, args.give_up_after)
        ready = ramp.pop("ready")
        log(f"all held: {ready}; measuring for {args.duration} s")
        client_pids = [p.pid for p in procs if p.pid]
        server_pids = proc_tree(server_pid) if server_pid else []
        c0, s0, m0 = cpu_s(client_pids), cpu_s(server_pids), machine_busy_s()
        w0 = time.perf_counter()
        ctl["hold"].set()
        spy = start_profile(args.profile, server_pids, args.duration)
        samples = []
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            time.sleep(min(2.0, max(0.0, end - time.monotonic())))
            if server_pid:
                samples.append(rss_kb(server_pid))
        wall = time.perf_counter() - w0
        c1, s1, m1 = cpu_s(client_pids), cpu_s(server_pids), machine_busy_s()
        meta = {"ramp": ramp, "rss_end_kb": rss_kb(server_pid) if server_pid else None,
                "rss_samples_kb": samples, "hold_wall_s": round(wall, 1),
                "client_cpu_s": round(c1 - c0, 1), "server_cpu_s": round(s1 - s0, 1),
                "client_cpu_cores": round((c1 - c0) / wall, 2),
                "server_cpu_cores": round((s1 - s0) / wall, 2) if server_pids else None,
                # Anything else running on the machine meanwhile (it shares the 2 cores).
                "other_cpu_cores": round(((m1 - m0) - (c1 - c0) - (s1 - s0)) / wall, 2)
                if server_pids else None,
                "client_cpu_share": round((c1 - c0) / ((c1 - c0) + (s1 - s0)), 3)
                if server_pids and (c1 - c0) + (s1 - s0) > 0 else None}
        if spy is not None:
            spy.wait(120)
        ctl["stop"].set()
        for _ in procs:
            results.append(ctl["results"].get(timeout=300))
    finally:
        ctl["stop"].set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    held = {r["index"]: {"min": r.get("held_min"), "median": r.get("held_median")}
            for r in results}
    return results, held, ready, meta


def watch_ramp(procs: list[Any], ctl: dict[str, Any], url: str, give_up_after: float
               ) -> dict[str, Any]:
    """Wait for every client to hold its share, probing /health once a second meanwhile.
    Records the most connections held at a moment /health answered within 1 s; if it has not
    for `give_up_after` seconds in a row, tells the clients to stop opening connections."""
    ready: list[Any] = []
    trace: list[list[Any]] = []
    best, bad_since, aborted_at = 0, None, None
    t0 = last_log = time.monotonic()
    deadline = t0 + 1800
    while len(ready) < len(procs) and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            ready.append(ctl["ready"].get(timeout=0.5))
            log(f"client ready: {ready[-1]}")
            continue
        if any(not p.is_alive() for p in procs):
            break
        held = list(ctl["counts"])
        ws, lp, sse = (sum(held[i::3]) for i in range(3))
        t = time.perf_counter()
        try:
            ok = requests.get(url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            ok = False
        ms = round((time.perf_counter() - t) * 1000, 1) if ok else None
        now = time.monotonic()
        trace.append([round(now - t0, 1), ws, lp, sse, ms])
        if ms is not None and ms <= 1000:
            best, bad_since = max(best, ws + lp + sse), None
        elif bad_since is None:
            bad_since = now
        if bad_since is not None and now - bad_since > give_up_after and aborted_at is None:
            aborted_at = [ws, lp, sse]
            ctl["abort"].set()
            log(f"/health has not answered within 1 s for {give_up_after:g} s: the ramp stops "
                f"at {ws} WebSockets, {lp} long-polls, {sse} streams")
        if now - last_log >= 10:
            last_log = now
            log(f"ramp: {ws} WebSockets, {lp} long-polls, {sse} streams; /health {ms} ms")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    return {"ready": ready, "max_held_with_health_under_1s": best,
            "aborted_at": aborted_at, "seconds": round(time.monotonic() - t0, 1),
            "trace_every_5s": trace[::5],
            "trace_columns": ["s", "ws", "longpolls", "streams", "health_ms"]}


def start_profile(path: Path | None, pids: list[int], seconds: float
                  ) -> subprocess.Popen[bytes] | None:
    if path is None or not pids:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pids[-1]),
         "--duration", str(int(seconds)), "--format", "raw", "--output", str(path),
         "--nonblocking", "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def meets(s: dict[str, Any]) -> dict[str, bool | None]:
    def le(key: str) -> bool | None:
        return None if s[key] is None else bool(s[key] <= TARGETS[key])

    return {
        "ws_connections": s["ws_connections"] >= TARGETS["ws_connections"],
        "longpolls": s["longpolls"] >= TARGETS["longpolls"],
        "rider_streams": s["rider_streams"] >= TARGETS["rider_streams"],
        "health_p99_ms": le("health_p99_ms"),
        "nearby_p99_ms": None if s["nearby_p99_ms"] is None else bool(
            s["nearby_p99_ms"] <= TARGETS["nearby_p99_ms"]
            and s["nearby_rps"] >= 0.95 * TARGETS["nearby_rps"]),
        "offer_push_p99_ms": le("offer_push_p99_ms"),
        "rider_push_p99_ms": le("rider_push_p99_ms"),
        "kb_per_connection": le("kb_per_connection"),
    }


# The errors that explain a latency without a single sample.
SAMPLE_ERRORS = {"health_p99_ms": ("health",), "nearby_p99_ms": ("nearby",),
                 "offer_push_p99_ms": ("trip_request:", "timeout:offer"),
                 "rider_push_p99_ms": ("trip_request:", "stream", "accept:", "arrive:",
                                       "timeout:assigned", "timeout:arrived")}


def miss_notes(s: dict[str, Any], problems: dict[str, int]) -> list[str]:
    out = []
    for key, ok in s["meets"].items():
        value, target = s[key], TARGETS[key]
        if ok is None:
            why = {k: v for k, v in problems.items()
                   if k.startswith(SAMPLE_ERRORS.get(key, ("-",)))}
            out.append(f"{key}: no sample" + (f" ({why})" if why else
                                              " (no server pid for memory)"
                                              if key == "kb_per_connection" else ""))
        elif not ok:
            if key in ("ws_connections", "longpolls", "rider_streams"):
                out.append(f"{key}: {value} held, {target - value:g} short of {target:g}")
            elif key == "nearby_p99_ms" and value <= target:
                out.append(f"nearby_rps: {s['nearby_rps']} answered against "
                           f"{TARGETS['nearby_rps']:g} offered (p99 {value} ms)")
            else:
                answered = s.get(key.replace("_p99_ms", "_answered")) \
                    if key in ("health_p99_ms", "nearby_p99_ms") else None
                done, _, sent = (answered or "").partition("/")
                extra = (f"; {answered} answered, the unanswered counted at their wait, so a "
                         "lower bound" if answered and done != sent else "")
                out.append(f"{key}: {value} against {target:g}, missed by "
                           f"{value - target:.1f} ({(value - target) / target:.0%}){extra}")
    return out


def git_head() -> str:
    """The commit served, and whether tracked files differ from it (the server runs the
    working tree)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, text=True,
                              capture_output=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "*.py", ":!bench")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted code" if dirty else "")


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--drivers", type=int, default=10_000, help="driver WebSockets")
    ap.add_argument("--longpolls", type=int, default=2_000, help="concurrent long-polls")
    ap.add_argument("--riders", type=int, default=1_000, help="rider trip streams")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds held and measured")
    ap.add_argument("--nearby-rps", type=float, default=TARGETS["nearby_rps"])
    ap.add_argument("--clients", type=int, default=2, help="client processes (at most 5)")
    ap.add_argument("--connect-rate", type=float, default=200.0,
                    help="new connections per second while ramping up, all clients")
    ap.add_argument("--quick", action="store_true", help="a small run: a smoke test")
    ap.add_argument("--target", help="aim at this running server instead of starting one")
    ap.add_argument("--target-db", help="with --target: its database URL (accounts go there)")
    ap.add_argument("--target-pid", type=int, help="with --target: its pid (memory, CPU)")
    ap.add_argument("--label", help="with --target: what that server is (goes in the JSON)")
    ap.add_argument("--give-up-after", type=float, default=120.0,
                    help="stop the ramp when /health has not answered within 1 s this long")
    ap.add_argument("--wait-quiet", type=float, default=600.0,
                    help="wait at most this long for the machine to be idle before starting")
    ap.add_argument("--skip-threaded", action="store_true",
                    help="do not measure the threaded (gthread) server")
    ap.add_argument("--profile", type=Path,
                    help="py-spy raw profile of the server, held (samples holding the GIL)")
    ap.add_argument("--out", type=Path, help="also write the JSON document here")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: the server and the client processes are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 1 <= args.clients <= len(ZONES):
        ap.error(f"--clients: 1 to {len(ZONES)}")
    if args.quick:
        defaults = {"drivers": 10_000, "longpolls": 2_000, "riders": 1_000, "duration": 60.0}
        small = {"drivers": 200, "longpolls": 50, "riders": 20, "duration": 8.0}
        for key, value in small.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
    doc = run(args)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
