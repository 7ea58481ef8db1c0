"""What a trip request costs PostgreSQL, counted at the wire: libpq's trace of every pooled
connection, one round trip per ReadyForQuery the server sends (BEGIN and COMMIT included). A
request's latency in the scaled mode is mostly these waits (py-spy: 83% in psycopg), so the
counts are pinned; a change that adds one must say why here."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.pq import Trace
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event

from dispatch.engine import DispatchConfig, Engine
from dispatch.model import DriverStatus, OfferState, RiderBusy
from geoindex import GeoIndex
from ridehail.kernel.db import make_engine
from ridehail.migrate import upgrade
from ridehail.units import sql_uow_factory
from simulator.clock import SimClock
from trips.fares import NYC_YELLOW_2016
from trips.model import PaymentRequired, TripState
from trips.payments import Payment

PICKUP = (40.7580, -73.9855)
DROPOFF = (40.7680, -73.9819)
M = 1 / 111_320  # about a metre of latitude


class Wire:
    """Round trips of every connection the engine checks out while `counting` is open."""

    def __init__(self, db: SqlEngine, path: Path) -> None:
        self.path = path
        self.fileno: int | None = None
        event.listen(db, "checkout", self._trace)
        event.listen(db, "checkin", self._untrace)

    def _trace(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if self.fileno is not None:
            dbapi_conn.pgconn.trace(self.fileno)
            dbapi_conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)

    def _untrace(self, dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.pgconn.untrace()

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[str]]:
        """Yields a list that holds, when the block ends, one line per round trip: what the
        client sent in it (its Query or Parse messages)."""
        trips: list[str] = []
        with self.path.open("w+") as trace:
            self.fileno = trace.fileno()
            try:
                yield trips
            finally:
                self.fileno = None
            trace.seek(0)
            sent: list[str] = []
            for line in trace:
                parts = line.rstrip("\n").split("\t")
                if parts[0] == "F" and parts[2] in ("Query", "Parse"):
                    sent.append(parts[3].strip()[:90])
                elif parts[0] == "B" and parts[2] == "ReadyForQuery":
                    trips.append(" / ".join(sent) or "(sync)")
                    sent = []


@pytest.fixture
def pg(pg_schema_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Wire, SimClock]]:
    db = make_engine(pg_schema_url)
    upgrade(pg_schema_url, engine=db)
    clock = SimClock(start=1_700_000_000.0)
    ids = itertools.count(1000)
    engine = Engine(sql_uow_factory(db), GeoIndex(backend="quadtree", ttl_s=60.0,
                                                  clock=clock.now),
                    new_id=lambda: str(next(ids)), clock=clock, timers=clock,
                    tariff=NYC_YELLOW_2016, config=DispatchConfig(policy="greedy"))
    try:
        yield engine, Wire(db, tmp_path / "libpq.trace"), clock
    finally:
        db.dispose()


def _online(engine: Engine, driver_id: str, metres_north: float) -> None:
    engine.go_online(driver_id, "standard")
    engine.update_location(driver_id, PICKUP[0] + metres_north * M, PICKUP[1])
    engine.index.publish()


def test_an_offered_trip_request_costs_four_round_trips(pg: Any) -> None:
    # BEGIN; the trip's insert, which also checks the rider's failed payments, and the
    # driver's claim (one statement); the offer and the dispatch record (one statement);
    # COMMIT.
    engine, wire, _clock = pg
    _online(engine, "1", 100)
    with wire.counting() as trips:
        trip = engine.request_trip("50", PICKUP, DROPOFF)
    assert engine.pending_offers("1")[0].trip_id == trip.id
    with engine.matcher.units(readonly=True) as uow:
        record = uow.records.get(trip.id)
    assert [(e["kind"], e.get("driver_id")) for e in record.events][-1] == ("offered", "1")
    assert len(trips) == 4, "\n".join(trips)


def test_a_request_whose_nearest_driver_was_taken_costs_no_more(pg: Any) -> None:
    # The index still shows driver 1 available (another process's claim, not yet announced):
    # one claim statement goes over both candidates, says why it skipped driver 1, and the
    # record has it.
    engine, wire, _clock = pg
    _online(engine, "1", 100)
    _online(engine, "2", 300)
    with engine.matcher.units() as uow:
        st = uow.drivers.get("1")
        st.status = DriverStatus.en_route
        uow.drivers.save(st)
        uow.commit()
    with wire.counting() as trips:
        trip = engine.request_trip("50", PICKUP, DROPOFF)
    assert engine.pending_offers("2")[0].trip_id == trip.id
    with engine.matcher.units(readonly=True) as uow:
        record = uow.records.get(trip.id)
    skipped = [e for e in record.events if e["kind"] == "skipped"]
    assert [(e["driver_id"], e["reason"]) for e in skipped] == [("1", "en_route")]
    assert len(trips) == 4, "\n".join(trips)


def test_a_refused_request_says_why(pg: Any) -> None:
    engine, wire, _clock = pg
    _online(engine, "1", 100)
    engine.request_trip("50", PICKUP, DROPOFF)
    with pytest.raises(RiderBusy):
        engine.request_trip("50", PICKUP, DROPOFF)
    with engine.matcher.units() as uow:
        uow.payments.add(Payment("77", "60", "1", 900, "USD", state="failed",
                                 last_error="card declined", created_at=0.0, updated_at=0.0))
        uow.commit()
    with pytest.raises(PaymentRequired) as info:
        engine.request_trip("60", PICKUP, DROPOFF)
    assert (info.value.trip_id, info.value.detail) == ("77", "card declined")
    with engine.matcher.units(readonly=True) as uow:
        assert uow.trips.open_for_rider("60") is None
        assert uow.trips.open_for_rider("50").state == TripState.requested


def test_a_riders_cancel_of_an_offered_trip_costs_seven_round_trips(pg: Any) -> None:
    # BEGIN; the trip; the pending offer withdrawn (one UPDATE that returns it, not a read of
    # the trip's offers and a write back); the trip; the driver released (one conditional
    # UPDATE, not a read and a compare-and-set); the event appended to the dispatch record
    # (one upsert, not a read and a compare-and-set); COMMIT.
    engine, wire, _clock = pg
    _online(engine, "1", 100)
    trip = engine.request_trip("50", PICKUP, DROPOFF)
    with wire.counting() as trips:
        engine.cancel(trip.id, "rider", "50")
    assert engine.get_trip(trip.id).state == TripState.cancelled
    with engine.matcher.units(readonly=True) as uow:
        assert uow.drivers.get("1").status == DriverStatus.available
        assert uow.offers.pending_for_trip(trip.id) is None
        record = uow.records.get(trip.id)
    assert [e["kind"] for e in record.events][-1] == "cancelled_by_rider"
    assert record.outcome == "cancelled_by_rider"
    assert not any("FROM dispatch_records" in sent for sent in trips), "\n".join(trips)
    assert len(trips) == 7, "\n".join(trips)


def test_a_drivers_rejection_costs_six_round_trips_before_the_re_offer(pg: Any) -> None:
    # The rejection's unit: BEGIN; the offer; the offer closed (compare-and-set); the driver
    # released if still offered the trip (one conditional UPDATE, not a read and a
    # compare-and-set); the event appended to the record (one upsert); COMMIT. Then the
    # re-offer to the next driver, a unit of its own: BEGIN; the trip; its offers; the record;
    # the claim; the offer; the record; COMMIT.
    engine, wire, _clock = pg
    _online(engine, "1", 100)
    _online(engine, "2", 300)
    trip = engine.request_trip("50", PICKUP, DROPOFF)
    offer = engine.pending_offers("1")[0]
    with wire.counting() as trips:
        engine.reject_offer(offer.id, "1")
    with engine.matcher.units(readonly=True) as uow:
        assert uow.drivers.get("1").status == DriverStatus.available
        assert uow.offers.get(offer.id).state == OfferState.rejected
    assert engine.pending_offers("2")[0].trip_id == trip.id
    rejection = trips[:6]
    assert "COMMIT" in rejection[-1], "\n".join(trips)
    assert not any("FROM driver_states" in sent or "FROM dispatch_records" in sent
                   for sent in rejection), "\n".join(trips)
    assert len(trips) == 6 + 8, "\n".join(trips)
