"""Benchmark of the ride-flow REST API against a real `ridehail serve` process on loopback.

Starts the server with the CLI on a free port (SQLite in a temporary folder, embedded mode),
puts 2,000 drivers online, then measures:

- location ingest: single `POST /v1/drivers/me/location` pings from several client threads,
  and `POST /v1/locations` batches of 500 with a service token (updates/s);
- nearby: `GET /v1/vehicles/nearby` at a fixed offered load (open loop: requests are sent on a
  schedule, and latency counts from the scheduled time, so a slow server cannot hide its queue);
- request -> offer: a driver long-polls `GET /v1/drivers/me/offers?wait=`; the time from
  `POST /v1/trips` to the long-poll returning the offer.

The peer a user would compare with is the same endpoint one call at a time (single pings vs
batches), reported as a ratio. Prints one JSON document with a top-level `summary`; stops by
itself (about 1 minute; `--quick` for a smoke run of a few seconds).

    python bench/api.py [--quick] [--out bench/results/api.json] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_s, describe  # noqa: E402

DRIVERS = 2000
BATCH = 500
MANHATTAN = (40.70, 40.80, -74.02, -73.93)  # lat_min, lat_max, lng_min, lng_max
# Request -> offer is measured in Staten Island, > 5 km from every synthetic driver, so the
# offer always goes to the one long-polling driver parked at the pickup.
STATEN = {"lat": 40.5795, "lng": -74.1502}
STATEN_DROP = {"lat": 40.6100, "lng": -74.1000}
TARGETS = {"nearby_p99_ms": 10.0, "nearby_rps": 500.0, "request_to_offer_p99_ms": 50.0,
           "locations_per_s": 100_000.0, "single_pings_per_s": 3_000.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": pct(values, 50), "p90_ms": pct(values, 90),
            "p99_ms": pct(values, 99), "max_ms": max(values) if values else float("nan")}


def ping_client(url: str, tokens: list[str], seconds: float,
                box: tuple[float, float, float, float], results: Any) -> None:
    """Each token's driver posts its location back to back for `seconds` (a spawned process):
    puts (pings answered 204, elapsed s, latencies in ms, other answers) on `results`."""
    import aiohttp

    async def run() -> tuple[int, float, list[float], int]:
        rng = random.Random(7)
        lat: list[float] = []
        done = failures = 0
        stop_at = time.perf_counter() + seconds

        async def driver(token: str) -> None:
            nonlocal done, failures
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
                while time.perf_counter() < stop_at:
                    body = {"lat": rng.uniform(box[0], box[1]), "lng": rng.uniform(box[2], box[3])}
                    t = time.perf_counter()
                    async with http.post(url + "/v1/drivers/me/location", json=body,
                                         headers=headers) as r:
                        await r.read()
                        if r.status == 204:
                            done += 1
                            lat.append((time.perf_counter() - t) * 1000)
                        else:
                            failures += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(driver(token) for token in tokens))
        return done, time.perf_counter() - t0, lat, failures

    results.put(asyncio.run(run()))


class Bench:
    def __init__(self, quick: bool, profile: Path | None) -> None:
        self.quick = quick
        self.profile = profile
        self.tmp = Path(tempfile.mkdtemp(prefix="ridehail-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RIDEHAIL_DATABASE_URL": f"sqlite:///{self.tmp / 'bench.db'}",
                    "RIDEHAIL_VAR_DIR": str(self.tmp), "RIDEHAIL_PORT": str(self.port),
                    "RIDEHAIL_LOG_LEVEL": "WARNING", "RIDEHAIL_THREADS": "64",
                    "RIDEHAIL_WORKERS": "1", "RIDEHAIL_MAX_BODY_BYTES": str(8 * 1024 * 1024),
                    # The load comes from one client address; the limits are not measured.
                    "RIDEHAIL_RATE_LIMIT_ENABLED": "false"}
        self.env.pop("RIDEHAIL_REDIS_URL", None)  # embedded mode: one process, one index
        self.proc: subprocess.Popen[bytes] | None = None
        self.local = threading.local()
        self.rng = random.Random(4)
        self.ids: list[str] = []

    # --- setup -----------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "ridehail.cli", *args], env=self.env,
                             cwd=ROOT, check=True, capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1]

    def seed_drivers(self) -> None:
        """2,000 online drivers written straight to the database (signing each up would spend
        minutes in argon2); the server restores them at start and their first batch places
        them on the map."""
        from dispatch.model import DriverState, DriverStatus
        from ridehail.kernel import ids
        from ridehail.kernel.db import make_engine
        from ridehail.units import sql_uow_factory

        engine = make_engine(self.env["RIDEHAIL_DATABASE_URL"])
        ids.configure(1)
        now = time.time()
        with sql_uow_factory(engine)() as uow:
            for _ in range(DRIVERS):
                driver_id = ids.new_id()
                uow.drivers.add(DriverState(driver_id, "standard", DriverStatus.available, now))
                self.ids.append(driver_id)
            uow.commit()
        engine.dispose()

    def start(self) -> None:
        self.cli("db", "upgrade")
        self.service = self.cli("accounts", "create-service", "bench-gateway")
        self.seed_drivers()
        self.proc = subprocess.Popen([sys.executable, "-m", "ridehail.cli", "serve"],
                                     env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + "/health", timeout=5).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit("server did not start within 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def session(self) -> requests.Session:
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
        return s

    def call(self, method: str, path: str, token: str, body: Any = None,
             timeout: float = 30) -> requests.Response:
        return self.session().request(method, self.url + path, json=body, timeout=timeout,
                                      headers={"Authorization": f"Bearer {token}"})

    def sign_up(self, role: str) -> tuple[str, str]:
        body: dict[str, Any] = {"name": "Bench", "password": "correct horse battery",
                                "email": f"{role}-{self.rng.getrandbits(48):x}@bench.invalid"}
        if role == "drivers":
            body["vehicle"] = {"make": "Toyota", "model": "Prius", "plate": "B-1", "seats": 4,
                               "vehicle_class": "standard"}
        r = requests.post(self.url + f"/v1/{role}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()["id"], r.json()["token"]

    def random_point(self) -> tuple[float, float]:
        lat0, lat1, lng0, lng1 = MANHATTAN
        return self.rng.uniform(lat0, lat1), self.rng.uniform(lng0, lng1)

    def place_all(self) -> None:
        for i in range(0, DRIVERS, BATCH):
            ups = [{"driver_id": d, "lat": p[0], "lng": p[1]}
                   for d in self.ids[i:i + BATCH] for p in [self.random_point()]]
            r = self.call("POST", "/v1/locations", self.service, {"updates": ups})
            assert r.status_code == 202 and r.json()["accepted"] == len(ups), r.text

    # --- phases ----------------------------------------------------------------------------

    def closed_loop(self, threads: int, seconds: float, fn: Callable[[int], int]
                    ) -> tuple[int, float, list[float]]:
        """`threads` clients calling fn(i) back to back for `seconds`; fn returns the number
        of updates it carried. Returns (updates, elapsed, per-call latencies in ms)."""
        stop_at = time.perf_counter() + seconds
        lat: list[list[float]] = [[] for _ in range(threads)]
        done = [0] * threads

        def worker(i: int) -> None:
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                done[i] += fn(i)
                lat[i].append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(worker, range(threads)))
        return sum(done), time.perf_counter() - t0, [x for xs in lat for x in xs]

    def batches(self, seconds: float, threads: int = 4) -> dict[str, Any]:
        payloads = []
        for i in range(0, DRIVERS, BATCH):
            payloads.append({"updates": [{"driver_id": d, "lat": p[0], "lng": p[1]}
                                         for d in self.ids[i:i + BATCH]
                                         for p in [self.random_point()]]})

        def send(i: int) -> int:
            body = payloads[(i + int(time.perf_counter() * 1000)) % len(payloads)]
            r = self.call("POST", "/v1/locations", self.service, body)
            assert r.status_code == 202, r.text
            return int(r.json()["accepted"])

        n, elapsed, lat = self.closed_loop(threads, seconds, send)
        return {"threads": threads, "batch": BATCH, "updates": n, "seconds": elapsed,
                "locations_per_s": n / elapsed, "batch_latency": summary_ms(lat)}

    def pings(self, seconds: float, drivers: int = 32) -> dict[str, Any]:
        """Single location posts, each of `drivers` drivers posting back to back on its own
        keep-alive connection, from an asyncio client (aiohttp) in a process of its own: a
        `requests` client in threads here spent more CPU per call than the server and bound
        the rate (643/s, with the server idle two thirds of the time)."""
        accounts = [self.sign_up("drivers") for _ in range(drivers)]
        for _id, token in accounts:
            assert self.call("PUT", "/v1/drivers/me/status", token,
                             {"status": "online"}).status_code == 200
        box = MANHATTAN
        ctx = mp.get_context("spawn")
        results: Any = ctx.Queue()
        client = ctx.Process(target=ping_client, args=(
            self.url, [token for _id, token in accounts], seconds, box, results))
        cpu0 = self.server_cpu_s()
        client.start()
        n, elapsed, lat, failures = results.get(timeout=seconds + 120)
        client.join(30)
        cpu = self.server_cpu_s() - cpu0
        # Park them off the map so they never take a benchmark trip.
        for _id, token in accounts:
            self.call("PUT", "/v1/drivers/me/status", token, {"status": "offline"})
        return {"drivers": drivers, "client": "aiohttp, one process, a connection per driver",
                "pings": n, "failures": failures, "seconds": elapsed,
                "pings_per_s": n / elapsed, "latency": summary_ms(lat),
                "server_cpu_ms_per_ping": cpu * 1000 / max(n, 1)}

    def nearby(self, rate: float, seconds: float, workers: int = 32) -> dict[str, Any]:
        _rid, rider = self.sign_up("riders")
        total = int(rate * seconds)
        points = [self.random_point() for _ in range(total)]
        latencies: list[float] = []
        service: list[float] = []
        errors = 0
        lock = threading.Lock()
        t0 = time.perf_counter() + 0.2

        def fire(i: int) -> None:
            nonlocal errors
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            start = time.perf_counter()
            lat, lng = points[i]
            r = self.call("GET", f"/v1/vehicles/nearby?lat={lat}&lng={lng}&radius_m=2000"
                          f"&limit=10", rider)
            end = time.perf_counter()
            with lock:
                if r.status_code != 200:
                    errors += 1
                latencies.append((end - scheduled) * 1000)  # includes any queueing
                service.append((end - start) * 1000)

        cpu0 = self.server_cpu_s()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fire, range(total)))
        elapsed = time.perf_counter() - t0
        cpu = self.server_cpu_s() - cpu0
        return {"offered_rps": rate, "seconds": seconds, "requests": total, "errors": errors,
                "achieved_rps": total / elapsed, "latency_from_schedule": summary_ms(latencies),
                "service_time": summary_ms(service),
                "server_cpu_ms_per_request": cpu * 1000 / max(total, 1)}

    def request_to_offer(self, trips: int) -> dict[str, Any]:
        _did, driver = self.sign_up("drivers")
        riders = [self.sign_up("riders") for _ in range(min(trips, 5))]
        assert self.call("PUT", "/v1/drivers/me/status", driver,
                         {"status": "online"}).status_code == 200
        assert self.call("POST", "/v1/drivers/me/location", driver, STATEN).status_code == 204
        time.sleep(0.2)  # the next snapshot publish (every 50 ms) shows the driver
        out: list[float] = []
        with ThreadPoolExecutor(1) as pool:
            for i in range(trips):
                rider = riders[i % len(riders)][1]
                poll = pool.submit(self.call, "GET", "/v1/drivers/me/offers?wait=10", driver)
                time.sleep(0.02)  # let the long-poll reach the server and subscribe
                t = time.perf_counter()
                r = self.call("POST", "/v1/trips", rider,
                              {"pickup": STATEN, "dropoff": STATEN_DROP})
                assert r.status_code == 201, r.text
                offers = poll.result().json()
                out.append((time.perf_counter() - t) * 1000)
                assert offers and offers[0]["trip_id"] == r.json()["id"], offers
                # Reject: the trip ends no_driver_found and the rider may ask again.
                rej = self.call("POST", f"/v1/offers/{offers[0]['id']}/reject", driver)
                assert rej.status_code == 200, rej.text
                time.sleep(0.06)  # the driver is available again from the next snapshot
        return {"trips": trips, "latency": summary_ms(out)}

    def profile_during(self, name: str, seconds: float, phase: Callable[[], Any]) -> Any:
        """Run `phase` with py-spy sampling the server (when --profile is given)."""
        if self.profile is None or self.proc is None:
            return phase()
        self.profile.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
             str(self._worker_pid()), "--duration", str(int(seconds) + 1), "--format", "raw",
             "--output", str(self.profile / f"{name}.txt"), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return phase()
        finally:
            spy.wait(60)

    def server_cpu_s(self) -> float:
        """CPU seconds the serving process has used (user + system, /proc/<pid>/stat): the
        cost of a request, which a machine shared with other work changes less than the
        rate or the latency."""
        return cpu_s([self._worker_pid()])

    def _worker_pid(self) -> int:
        assert self.proc is not None
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        return int(children[0]) if children else self.proc.pid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds: a smoke run")
    ap.add_argument("--out", type=Path, help="also write the JSON document here")
    ap.add_argument("--profile", type=Path, help="py-spy profiles of the server per phase")
    args = ap.parse_args()
    q = args.quick
    machine = describe()  # bench/machine.py: before the servers start
    b = Bench(q, args.profile)
    started = time.perf_counter()
    try:
        b.start()
        b.place_all()
        batch = b.profile_during("batches", 2 if q else 8, lambda: b.batches(2 if q else 8))
        ping = b.profile_during("pings", 2 if q else 8, lambda: b.pings(2 if q else 8))
        b.place_all()  # fresh positions (the index forgets drivers silent for 30 s)
        near = b.profile_during("nearby", 2 if q else 10,
                                lambda: b.nearby(TARGETS["nearby_rps"], 2 if q else 10))
        offer = b.profile_during("offer", 5 if q else 20,
                                 lambda: b.request_to_offer(10 if q else 100))
    finally:
        b.stop()
    summary = {
        "nearby_p99_ms": near["latency_from_schedule"]["p99_ms"],
        "nearby_p50_ms": near["latency_from_schedule"]["p50_ms"],
        "nearby_rps": near["achieved_rps"],
        "nearby_errors": near["errors"],
        "request_to_offer_p50_ms": offer["latency"]["p50_ms"],
        "request_to_offer_p99_ms": offer["latency"]["p99_ms"],
        "locations_per_s": batch["locations_per_s"],
        "single_pings_per_s": ping["pings_per_s"],
        "batch_vs_single_ratio": batch["locations_per_s"] / ping["pings_per_s"],
        "server_cpu_ms_per_ping": ping["server_cpu_ms_per_ping"],
        "server_cpu_ms_per_nearby": near["server_cpu_ms_per_request"],
        "targets": TARGETS,
        "meets": {
            "nearby_p99_ms": near["latency_from_schedule"]["p99_ms"]
            <= TARGETS["nearby_p99_ms"] and near["achieved_rps"] >= 0.95 * TARGETS["nearby_rps"],
            "request_to_offer_p99_ms": offer["latency"]["p99_ms"]
            <= TARGETS["request_to_offer_p99_ms"],
            "locations_per_s": batch["locations_per_s"] >= TARGETS["locations_per_s"],
            "single_pings_per_s": ping["pings_per_s"] >= TARGETS["single_pings_per_s"],
        },
    }
    doc = {
        "workload": {"drivers_online": DRIVERS, "batch_size": BATCH, "quick": q,
                     "server": "ridehail serve (uvicorn, the connection edge, Flask in 64 "
                               "threads), SQLite, embedded mode, loopback",
                     "client": "requests in threads (set-up, batches, nearby, offers); "
                               "aiohttp in a process of its own (single pings); same machine",
                     "machine": machine},
        "location_batches": batch, "location_pings": ping, "nearby": near,
        "request_to_offer": offer, "wall_s": time.perf_counter() - started,
        "summary": summary,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
