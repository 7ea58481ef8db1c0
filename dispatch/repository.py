"""Dispatch repositories (driver states, offers, dispatch records): SQL and memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    any_,
    bindparam,
    cast,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ridehail.kernel.errors import Conflict
from ridehail.kernel.units import MemoryStore, UndoLog
from ridehail.kernel.versioned import MemoryVersioned, RowCodec, SqlVersioned
from trips.model import Trip
from trips.repository import CODEC as TRIP_CODEC
from trips.repository import MemoryTripRepository, SqlTripRepository, open_statement

from .model import (
    Claim,
    DispatchRecord,
    DriverState,
    DriverStatus,
    DriverSummary,
    Offer,
    OfferState,
)
from .tables import dispatch_records, driver_states, offers


def _summary_page(condition: Any) -> Any:
    """A page of driver summaries (`_summaries`) meeting `condition`, by id after `after`."""
    return (
        select(driver_states.c.driver_id, driver_states.c.status,
               driver_states.c.vehicle_class, driver_states.c.trip_id, driver_states.c.version)
        .where(condition, driver_states.c.driver_id > bindparam("after"))
        .order_by(driver_states.c.driver_id)
        .limit(bindparam("limit"))
    )


# Built once: a statement built per call spends more on SQLAlchemy's cache key than on the row.
_ONLINE_PAGE = _summary_page(driver_states.c.status != DriverStatus.offline.value)
# Drivers changed since a time, in any status (an incremental reconcile's page).
_CHANGED_PAGE = _summary_page(driver_states.c.updated_at >= bindparam("since"))

# A claim: the first of the candidates (in the order given) whose row says available goes
# offered to the trip, and its version moves on, so any writer that read the row before (a
# status change, another claim) loses its compare-and-set. On PostgreSQL it is one statement
# whatever the number of candidates, which also reads, from its own snapshot, the status each
# candidate had: the misses before the claimed driver say why in the same round trip (in the
# 3-process cluster a request tried 1.7 drivers on average: riders at one place race for
# the same nearest driver, whom the index still shows available). It skips a row another
# transaction holds (FOR UPDATE SKIP LOCKED) instead of waiting for that transaction to
# end: the holder is all but always another dispatch's claim of the same driver, and waiting
# on it (its offer, its record, its commit), for a driver this dispatch would then not get,
# made a claim 22% of a request's wall time against 9% for the offer's insert, one round
# trip each (py-spy). Found "available" yet not claimed means a concurrent claim holds the
# driver, or committed since this statement's snapshot.
_AVAILABLE, _OFFERED = DriverStatus.available.value, DriverStatus.offered.value
_OFFERS_AVAILABLE = (  # the claim's write, whichever driver it picks
    update(driver_states)
    .where(driver_states.c.status == _AVAILABLE)
    .values(status=_OFFERED, trip_id=bindparam("w_trip"), updated_at=bindparam("w_now"),
            version=driver_states.c.version + 1)
)
_CLAIM = _OFFERS_AVAILABLE.where(driver_states.c.driver_id == bindparam("w_driver"))
# A release: the driver goes available only if their row still holds the trip, in one
# statement instead of a read and a compare-and-set (a cancel's two round trips). Waiting on
# the row's lock, PostgreSQL re-checks the condition against the row as committed meanwhile.
_RELEASE = (
    update(driver_states)
    .where(driver_states.c.driver_id == bindparam("w_driver"),
           driver_states.c.trip_id == bindparam("w_trip"))
    .values(status=_AVAILABLE, trip_id=None, updated_at=bindparam("w_now"),
            version=driver_states.c.version + 1)
    .returning(driver_states.c.version)
)
# The same, only from one status (an offer's rejection or expiry frees a driver still offered
# the trip, never one who accepted it meanwhile).
_RELEASE_FROM = _RELEASE.where(driver_states.c.status == bindparam("w_status"))
_STATUS = select(driver_states.c.status).where(driver_states.c.driver_id == bindparam("w_driver"))
_CLAIM_VERSION = _CLAIM.returning(driver_states.c.version)
_IDS = bindparam("w_ids", type_=ARRAY(BigInteger))


def _claim_first_statement(opening: Any = None) -> Any:
    """PostgreSQL's `claim_first`: one row per candidate (in `w_ids`) with the status this
    statement's snapshot found and, for the one claimed, the row's new version. Given
    `opening` (a new trip's insert, `trips.repository.open_statement`), the insert goes first
    in the same statement, no driver is claimed unless it inserted, and each row says whether
    it did (`opened`): a trip request's insert and claim share one round trip."""
    candidates = select(driver_states.c.driver_id).where(
        driver_states.c.driver_id == any_(_IDS), driver_states.c.status == _AVAILABLE)
    if opening is not None:
        opening = opening.cte("opened")
        candidates = candidates.where(exists(select(opening.c.id)))
    picked = (candidates.order_by(func.array_position(_IDS, driver_states.c.driver_id))
              .limit(1).with_for_update(skip_locked=True).cte("picked"))
    claimed = (_OFFERS_AVAILABLE
               .where(driver_states.c.driver_id == select(picked.c.driver_id).scalar_subquery())
               .returning(driver_states.c.driver_id, driver_states.c.version).cte("claimed"))
    # Every candidate has a row, a row of theirs or not (`unnest`), so the answer is never
    # empty and always carries `opened`. Each candidate's status is read by its key (a
    # subquery, not a join): on a table without statistics yet, the planner hashed a join
    # against a scan of every driver (tests/dispatch/test_driver_state_writes.py).
    wanted = func.unnest(_IDS).table_valued("driver_id").render_derived("wanted")
    status = (select(driver_states.c.status)
              .where(driver_states.c.driver_id == wanted.c.driver_id)
              .scalar_subquery().label("status"))
    out = (select(wanted.c.driver_id, status, claimed.c.version)
           .select_from(wanted.outerjoin(claimed, claimed.c.driver_id == wanted.c.driver_id)))
    if opening is not None:
        out = out.add_columns(select(opening.c.id).scalar_subquery().label("opened"))
    return out


_CLAIM_FIRST = _claim_first_statement()
_TRIP_PREFIX = "t_"  # the embedded insert's parameters: the trip's row, so prefixed
_OPEN_AND_CLAIM_FIRST = _claim_first_statement(open_statement("postgresql", prefix=_TRIP_PREFIX))


def _first_claimed(rows: Iterable[Any], driver_ids: Sequence[str]) -> Claim:
    """The `Claim` in `_claim_first_statement`'s rows: the first candidate with a version."""
    found = {str(r.driver_id): (r.status, r.version) for r in rows}
    skipped: list[tuple[str, str]] = []
    for d in driver_ids:
        status, version = found.get(d, (None, None))
        if version is not None:
            return Claim(d, int(version), skipped)
        skipped.append((d, _why_not(status)))
    return Claim(None, None, skipped)


DRIVER_CODEC: RowCodec[DriverState] = RowCodec(
    DriverState, id_columns=("driver_id", "trip_id"), decoders={"status": DriverStatus}
)
OFFER_CODEC: RowCodec[Offer] = RowCodec(
    Offer, id_columns=("id", "trip_id", "driver_id"), decoders={"state": OfferState}
)
# A withdrawal: the trip's pending offer (at most one, uq_offers_pending_trip) closes as
# withdrawn in one statement that returns it, instead of reading the trip's offers and writing
# the pending one back.
_WITHDRAW = (
    update(offers)
    .where(offers.c.trip_id == bindparam("w_trip"), offers.c.state == OfferState.pending.value)
    .values(state=OfferState.withdrawn.value, responded_at=bindparam("w_now"),
            version=offers.c.version + 1)
    .returning(*offers.c)
)
RECORD_CODEC: RowCodec[DispatchRecord] = RowCodec(DispatchRecord, id_columns=("trip_id",))


def _offer_unique(offer: Offer) -> Iterable[tuple[str, Any]]:
    if offer.state == OfferState.pending:
        yield ("pending_driver", offer.driver_id)
        yield ("pending_trip", offer.trip_id)


class SqlDriverStates(SqlVersioned[DriverState]):
    updates_unique = False  # only the driver id is unique
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, driver_states, DRIVER_CODEC, key="driver_id")

    def add(self, state: DriverState) -> None:
        self.insert(state)

    def claim_first(self, driver_ids: Sequence[str], trip_id: str, now: float) -> Claim:
        if self.conn.dialect.name == "postgresql":
            return _first_claimed(self.conn.execute(_CLAIM_FIRST, _claim_params(
                driver_ids, trip_id, now)), driver_ids)
        # SQLite: write units hold the database lock, so nobody claims meanwhile
        skipped: list[tuple[str, str]] = []
        for d in driver_ids:
            params = {"w_driver": int(d), "w_trip": int(trip_id), "w_now": now}
            version = self.conn.execute(_CLAIM_VERSION, params).scalar()
            if version is not None:
                return Claim(d, int(version), skipped)
            skipped.append((d, _why_not(self.conn.execute(_STATUS, params).scalar())))
        return Claim(None, None, skipped)

    def open_and_claim_first(self, trip: Trip, driver_ids: Sequence[str], now: float
                             ) -> Claim | None:
        if self.conn.dialect.name != "postgresql" or not driver_ids:
            if not SqlTripRepository(self.conn).open(trip):
                return None
            return self.claim_first(driver_ids, trip.id, now)
        params = {_TRIP_PREFIX + k: v for k, v in TRIP_CODEC.to_row(trip).items()}
        params.update(_claim_params(driver_ids, trip.id, now))
        rows = self.conn.execute(_OPEN_AND_CLAIM_FIRST, params).all()
        if rows[0].opened is None:
            return None
        return _first_claimed(rows, driver_ids)

    def release(self, driver_id: str, trip_id: str, now: float, *,
                status: DriverStatus | None = None) -> int | None:
        params: dict[str, Any] = {"w_driver": int(driver_id), "w_trip": int(trip_id),
                                  "w_now": now}
        if status is None:
            version = self.conn.execute(_RELEASE, params).scalar()
        else:
            params["w_status"] = status.value
            version = self.conn.execute(_RELEASE_FROM, params).scalar()
        return None if version is None else int(version)

    def online_page(self, after: int, limit: int) -> list[DriverSummary]:
        return _summaries(self.conn.execute(_ONLINE_PAGE, {"after": after, "limit": limit}))

    def changed_page(self, since: float, after: int, limit: int) -> list[DriverSummary]:
        return _summaries(self.conn.execute(_CHANGED_PAGE, {"since": since, "after": after,
                                                            "limit": limit}))

    def many(self, driver_ids: list[str]) -> list[DriverState]:
        out: list[DriverState] = []
        for start in range(0, len(driver_ids), 500):
            chunk = [int(d) for d in driver_ids[start:start + 500]]
            out += self.find(driver_states.c.driver_id.in_(chunk))
        return out


def _claim_params(driver_ids: Sequence[str], trip_id: str, now: float) -> dict[str, Any]:
    return {"w_ids": [int(d) for d in driver_ids], "w_trip": int(trip_id), "w_now": now}


def _summaries(rows: Iterable[Any]) -> list[DriverSummary]:
    return [DriverSummary(str(r.driver_id), DriverStatus(r.status), r.vehicle_class,
                          None if r.trip_id is None else str(r.trip_id), r.version)
            for r in rows]


def _why_not(found: str | None) -> str:
    if found is None:
        return "unknown"
    return "claimed" if found == _AVAILABLE else found


class MemoryDriverStates(MemoryVersioned[DriverState]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "driver_states", key="driver_id")
        self.store = store  # a trip request's trips repository (`open_and_claim_first`)

    def add(self, state: DriverState) -> None:
        self.insert(state)

    def claim_first(self, driver_ids: Sequence[str], trip_id: str, now: float) -> Claim:
        skipped: list[tuple[str, str]] = []
        for d in driver_ids:
            st = self.get(d)
            if st is None or st.status != DriverStatus.available:
                skipped.append((d, _why_not(None if st is None else st.status.value)))
                continue
            st.status, st.trip_id, st.updated_at = DriverStatus.offered, trip_id, now
            self.save(st)  # the version moves on, as the SQL claim's does
            return Claim(d, st.version, skipped)
        return Claim(None, None, skipped)

    def open_and_claim_first(self, trip: Trip, driver_ids: Sequence[str], now: float
                             ) -> Claim | None:
        if not MemoryTripRepository(self.store, self.undo).open(trip):
            return None
        return self.claim_first(driver_ids, trip.id, now)

    def release(self, driver_id: str, trip_id: str, now: float, *,
                status: DriverStatus | None = None) -> int | None:
        st = self.get(driver_id)
        if st is None or st.trip_id != trip_id or status not in (None, st.status):
            return None
        st.status, st.trip_id, st.updated_at = DriverStatus.available, None, now
        self.save(st)
        return st.version

    def online_page(self, after: int, limit: int) -> list[DriverSummary]:
        return self._page(lambda s: s.status != DriverStatus.offline, after, limit)

    def changed_page(self, since: float, after: int, limit: int) -> list[DriverSummary]:
        return self._page(lambda s: s.updated_at >= since, after, limit)

    def _page(self, keep: Callable[[DriverState], bool], after: int, limit: int
              ) -> list[DriverSummary]:
        keys = sorted(int(k) for k, s in list(self.rows.items())
                      if keep(s) and int(k) > after)[:limit]
        rows = [self.rows[str(k)] for k in keys]
        return [DriverSummary(s.driver_id, s.status, s.vehicle_class, s.trip_id, s.version)
                for s in rows]

    def many(self, driver_ids: list[str]) -> list[DriverState]:
        found = (self.get(d) for d in driver_ids)
        return [st for st in found if st is not None]


def _offer_with_record() -> Any:
    """An offer and its trip's first dispatch record in one PostgreSQL statement (`add`'s
    `new_record`): the record's insert reads the offer's, so an offer a unique rule refused
    (or a record another unit inserted meanwhile) returns no row and writes nothing more."""
    offer = (pg_insert(offers)
             .values({c.name: bindparam(f"o_{c.name}", type_=c.type) for c in offers.c})
             .on_conflict_do_nothing().returning(offers.c.id).cte("offer"))
    values = select(*[bindparam(f"r_{c.name}", type_=c.type) for c in dispatch_records.c])
    return (pg_insert(dispatch_records)
            .from_select([c.name for c in dispatch_records.c],
                         values.where(exists(select(offer.c.id))))
            .on_conflict_do_nothing().returning(dispatch_records.c.trip_id).add_cte(offer))


_OFFER_WITH_RECORD = _offer_with_record()


class SqlOffers(SqlVersioned[Offer]):
    updates_unique = False  # use cases only close offers (pending is set at insert)
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, offers, OFFER_CODEC)

    def add(self, offer: Offer, new_record: DispatchRecord | None = None) -> None:
        if new_record is None or self.conn.dialect.name != "postgresql":
            self.insert(offer)
            if new_record is not None:
                SqlDispatchRecords(self.conn).add(new_record)
            return
        params = {f"o_{k}": v for k, v in self.codec.to_row(offer).items()}
        params.update({f"r_{k}": v for k, v in RECORD_CODEC.to_row(new_record).items()})
        if self.conn.execute(_OFFER_WITH_RECORD, params).first() is None:
            raise Conflict(f"offer {offer.id} or the dispatch record of trip {offer.trip_id} "
                           "conflicts with a stored row (a unique rule)")

    def pending_for_driver(self, driver_id: str) -> list[Offer]:
        return self.find(offers.c.driver_id == int(driver_id), offers.c.state == "pending")

    def for_trip(self, trip_id: str) -> list[Offer]:
        return self.find(offers.c.trip_id == int(trip_id), order_by=offers.c.created_at)

    def withdraw_pending(self, trip_id: str, now: float) -> Offer | None:
        row = self.conn.execute(_WITHDRAW, {"w_trip": int(trip_id), "w_now": now}).first()
        return None if row is None else self.codec.from_row(row)

    def pending_for_trip(self, trip_id: str) -> Offer | None:
        found = self.find(offers.c.trip_id == int(trip_id), offers.c.state == "pending")
        return found[0] if found else None

    def expired_pending(self, now: float, limit: int = 100) -> list[Offer]:
        return self.find(offers.c.state == "pending", offers.c.deadline <= now,
                         order_by=offers.c.deadline, limit=limit)


class MemoryOffers(MemoryVersioned[Offer]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "offers", unique=_offer_unique)
        # trip id -> its offer ids: the index a database would keep (ix_offers_trip), so a
        # trip's offers are found without scanning every offer of the run.
        self.by_trip: dict[str, tuple[str, ...]] = store.table("offers:by_trip")
        self.records = MemoryDispatchRecords(store, undo)  # for `add`'s new_record

    def add(self, offer: Offer, new_record: DispatchRecord | None = None) -> None:
        if new_record is not None and self.records.get(new_record.trip_id) is not None:
            raise Conflict(f"the dispatch record of trip {offer.trip_id} is stored already")
        self.insert(offer)
        self.undo.set(self.by_trip, offer.trip_id,
                      self.by_trip.get(offer.trip_id, ()) + (offer.id,))
        if new_record is not None:
            self.records.add(new_record)

    def withdraw_pending(self, trip_id: str, now: float) -> Offer | None:
        offer = self.pending_for_trip(trip_id)
        if offer is None:
            return None
        offer.close(OfferState.withdrawn, now)
        self.save(offer)
        return offer

    def pending_for_trip(self, trip_id: str) -> Offer | None:
        return self.lookup("pending_trip", trip_id)

    def pending_for_driver(self, driver_id: str) -> list[Offer]:
        offer = self.lookup("pending_driver", driver_id)
        return [] if offer is None else [offer]

    def for_trip(self, trip_id: str) -> list[Offer]:
        found = [self.get(k) for k in self.by_trip.get(trip_id, ())]
        return sorted((o for o in found if o is not None), key=lambda o: o.created_at)

    def expired_pending(self, now: float, limit: int = 100) -> list[Offer]:
        keys = [k for (rule, _v), k in list(self.uidx.items()) if rule == "pending_trip"]
        found = [o for o in (self.get(k) for k in keys) if o is not None and o.deadline <= now]
        return sorted(found, key=lambda o: o.deadline)[:limit]


def _append(dialect: str) -> Any:
    """An event onto a trip's record (`append`), an upsert: the new row holds the one event;
    an existing one gets it added to its array (PostgreSQL's jsonb ||, SQLite's json_insert)
    and keeps its outcome unless one is given."""
    table = dispatch_records
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(
        trip_id=bindparam("w_trip"), created_at=bindparam("w_now"),
        events=bindparam("w_events", type_=JSON), outcome=bindparam("w_outcome"), version=0)
    new = stmt.excluded
    events: Any
    if dialect == "postgresql":
        events = cast(cast(table.c.events, JSONB).op("||")(cast(new.events, JSONB)), JSON)
    else:
        events = func.json_insert(table.c.events, "$[#]",
                                  func.json(func.json_extract(new.events, "$[0]")))
    return stmt.on_conflict_do_update(index_elements=[table.c.trip_id], set_={
        "events": events, "outcome": func.coalesce(new.outcome, table.c.outcome),
        "version": table.c.version + 1})


_APPEND = {dialect: _append(dialect) for dialect in ("postgresql", "sqlite")}


class SqlDispatchRecords(SqlVersioned[DispatchRecord]):
    updates_unique = False  # only the trip id is unique
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, dispatch_records, RECORD_CODEC, key="trip_id")

    def add(self, record: DispatchRecord) -> None:
        self.insert(record)

    def append(self, trip_id: str, now: float, event: dict[str, Any],
               outcome: str | None = None) -> None:
        self.conn.execute(_APPEND[self.conn.dialect.name], {
            "w_trip": int(trip_id), "w_now": now, "w_events": [event], "w_outcome": outcome})


class MemoryDispatchRecords(MemoryVersioned[DispatchRecord]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "dispatch_records", key="trip_id")

    def add(self, record: DispatchRecord) -> None:
        self.insert(record)

    def append(self, trip_id: str, now: float, event: dict[str, Any],
               outcome: str | None = None) -> None:
        stored = self.get(trip_id)
        record = stored or DispatchRecord(trip_id, now)
        record.events.append(dict(event))
        record.outcome = outcome or record.outcome
        if stored is None:
            self.insert(record)
        else:
            self.save(record)

