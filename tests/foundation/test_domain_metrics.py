"""The domain metrics on `/metrics` (issue 16): each one moves when its event happens, and only
then: offers made, accepted, rejected and expired, dispatch latency, payment attempts and
failures, the stream lag, connected drivers; and the process and GC collectors are there."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from dispatch.engine import DispatchConfig, Engine
from dispatch.feed import StreamTailer, entry_age_s, redis_client
from geoindex import GeoIndex
from ridehail.kernel.units import MemoryStore
from ridehail.units import memory_uow_factory
from simulator.clock import SimClock
from tests.conftest import NEEDS_REDIS, REDIS_URL, app_factory, make_settings
from tests.payments.helpers import POLICY, completed_trip, set_method
from trips.billing import charge_trip
from trips.fares import NYC_YELLOW_2016
from trips.sandbox import SandboxProvider

PICKUP = (40.7580, -73.9855)  # Times Square
DROPOFF = (40.7680, -73.9819)
M = 1 / 111_320  # about a metre of latitude

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with app_factory(lambda **o: make_settings(tmp_path, **o), start_background=False) as make:
        yield make()


@pytest.fixture
def scrape(app: Flask) -> Callable[[], Samples]:
    client = app.test_client()

    def read() -> Samples:
        r = client.get("/metrics")
        assert r.status_code == 200
        return {(s.name, frozenset(s.labels.items())): s.value
                for f in text_string_to_metric_families(r.get_data(as_text=True))
                for s in f.samples}
    return read


class Moves:
    """The change of every series since the last look."""

    def __init__(self, scrape: Callable[[], Samples]) -> None:
        self.scrape = scrape
        self.last = scrape()

    def __call__(self, prefix: str = "ridehail_") -> dict[str, float]:
        now = self.scrape()
        out = {}
        for key, v in now.items():
            name, labels = key
            if not name.startswith(prefix) or name.startswith("ridehail_http_"):
                continue
            d = v - self.last.get(key, 0.0)
            if d and not name.endswith("_sum"):
                out[name + "".join(f"{{{k}={v}}}" for k, v in sorted(labels)
                                   if k != "le")] = d
        self.last = now
        return {k: v for k, v in out.items() if "_bucket" not in k}


def engine() -> tuple[Engine, SimClock]:
    clock = SimClock(start=1_700_000_000.0)
    ids = itertools.count(1000)
    index = GeoIndex(backend="quadtree", ttl_s=60.0, clock=clock.now)
    eng = Engine(memory_uow_factory(MemoryStore()), index, new_id=lambda: str(next(ids)),
                 clock=clock, timers=clock, tariff=NYC_YELLOW_2016,
                 config=DispatchConfig(offer_timeout_s=15.0))
    return eng, clock


def online(eng: Engine, driver_id: str, metres_north: float) -> None:
    eng.go_online(driver_id, "standard")
    eng.update_location(driver_id, PICKUP[0] + metres_north * M, PICKUP[1])
    eng.index.publish()


def test_each_offer_event_moves_its_own_counter(scrape: Callable[[], Samples]) -> None:
    eng, clock = engine()
    for driver_id, metres in (("1", 100), ("2", 300), ("3", 500)):
        online(eng, driver_id, metres)
    moved = Moves(scrape)

    eng.request_trip("50", PICKUP, DROPOFF)
    assert moved() == {"ridehail_offers_made_total": 1,
                       "ridehail_dispatch_latency_seconds_count{outcome=offered}": 1}
    eng.reject_offer(eng.pending_offers("1")[0].id, "1")  # then offered to 2
    assert moved() == {"ridehail_offers_rejected_total": 1, "ridehail_offers_made_total": 1,
                       "ridehail_dispatch_latency_seconds_count{outcome=offered}": 1}
    clock.run_until(clock.now() + 15.0)  # 2 let it expire; then offered to 3
    assert moved() == {"ridehail_offers_expired_total": 1, "ridehail_offers_made_total": 1,
                       "ridehail_dispatch_latency_seconds_count{outcome=offered}": 1}
    eng.accept_offer(eng.pending_offers("3")[0].id, "3")
    assert moved() == {"ridehail_offers_accepted_total": 1}
    eng.request_trip("51", (40.3, -73.98), DROPOFF)  # 50 km south: nobody near
    assert moved() == {"ridehail_dispatch_latency_seconds_count{outcome=no_driver}": 1}


def test_payment_attempts_and_failures_move_with_each_recorded_attempt(
        app: Flask, scrape: Callable[[], Samples]) -> None:
    units = app.extensions["uow_factory"]
    provider = SandboxProvider(units)
    moved = Moves(scrape)

    def charge(token: str, attempts: int = 1) -> str:
        trip = completed_trip(units)
        set_method(units, trip.rider_id, token)
        out = ""
        for i in range(attempts):
            out = charge_trip(units, provider, trip.id, POLICY,
                              final_attempt=i == attempts - 1 and attempts > 1).state
        return out

    assert charge("tok_ok") == "captured"
    assert moved() == {"ridehail_payment_attempts_total": 1}
    assert charge("tok_declined") == "failed"
    assert moved() == {"ridehail_payment_attempts_total": 1,
                       "ridehail_payment_failures_total{kind=final}": 1}
    assert charge("tok_timeout", attempts=3) == "failed"  # two retries, then given up
    assert moved() == {"ridehail_payment_attempts_total": 3,
                       "ridehail_payment_failures_total{kind=transient}": 2,
                       "ridehail_payment_failures_total{kind=final}": 1}


def test_an_entry_id_tells_its_age() -> None:
    assert entry_age_s(b"1700000000000-3", now=1_700_000_002.5) == 2.5
    assert entry_age_s("1700000005000-0", now=1_700_000_002.5) == 0.0  # Redis's clock ahead


@NEEDS_REDIS
def test_the_stream_lag_is_the_age_of_the_last_entry_applied(
        scrape: Callable[[], Samples]) -> None:
    redis = redis_client(REDIS_URL)
    stream = f"rh-test-lag-{uuid.uuid4().hex[:8]}"
    handled = threading.Event()
    tailer = StreamTailer(redis, stream, lambda fields: handled.set(), name="lag-test",
                          block_ms=100)
    tailer.start()
    try:
        # An entry stamped 30 s ago (ids are Redis's milliseconds): applied now, 30 s late.
        redis.xadd(stream, {"x": "1"}, id=f"{int(time.time() * 1000) - 30_000}-0")
        assert handled.wait(10)
        lag = scrape()[("ridehail_stream_lag_seconds", frozenset({("stream", stream)}))]
        assert 30 <= lag < 60
    finally:
        tailer.stop()
        redis.delete(stream)


def test_the_process_and_gc_collectors_are_exported(scrape: Callable[[], Samples]) -> None:
    seen = {name for name, _labels in scrape()}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total",
            "python_gc_collections_total", "python_info"} <= seen


def test_connected_drivers_follow_the_edges_connections(app: Flask,
                                                        scrape: Callable[[], Samples]) -> None:
    from ridehail.edge.connections import Conn
    from ridehail.edge.core import Edge

    edge = Edge(app)
    try:
        def conn(kind: str) -> Any:
            return Conn(kind, uuid.uuid4().hex, "h", send=lambda frame: None,  # type: ignore[arg-type]
                        on_close=lambda code: None)

        ws, poll = conn("ws"), conn("poll")
        edge.registry.add(ws)
        edge.registry.add(poll)
        gauge = {k: scrape()[("ridehail_edge_connections", frozenset({("kind", k)}))]
                 for k in ("ws", "poll", "sse")}
        assert gauge == {"ws": 1, "poll": 1, "sse": 0}
        edge.registry.remove(ws)
        assert scrape()[("ridehail_edge_connections", frozenset({("kind", "ws")}))] == 0
    finally:
        edge.pool.shutdown(wait=False)


def test_the_workers_metrics_answer_the_monitoring_networks_only(tmp_path: Path) -> None:
    """`ridehail worker --metrics-port`: payments happen in the worker in the scaled mode."""
    import requests

    from ridehail.metrics import serve_worker_metrics
    from tests.conftest import free_port

    for networks, status in (("127.0.0.0/8", 200), ("10.9.0.0/16", 403)):
        port = free_port()
        httpd = serve_worker_metrics(make_settings(
            tmp_path, worker_metrics_port=port, metrics_public=False, metrics_networks=networks))
        try:
            r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        finally:
            httpd.shutdown()
            httpd.server_close()
        assert r.status_code == status
        assert ("ridehail_payment_failures_total" in r.text) == (status == 200)
        assert ("process_cpu_seconds_total" in r.text) == (status == 200)
