"""How PostgreSQL stores a driver's status changes (migration 0009): in place, and a claim reads
its candidates only. Both break if an index on a column the claim writes comes back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from dispatch.model import DriverState, DriverStatus
from dispatch.repository import _CLAIM_FIRST, _claim_params
from ridehail.kernel.ids import new_id

T0 = 1_767_000_000.0


def _seed(units: Callable[..., Any], n: int) -> list[str]:
    ids = [new_id() for _ in range(n)]
    with units() as uow:
        for d in ids:
            uow.drivers.add(DriverState(d, "standard", DriverStatus.available, T0))
        uow.commit()
    return ids


def _xact_updates(conn: Any) -> tuple[int, int]:
    """(rows updated, of them in place) in driver_states by this transaction so far."""
    row = conn.execute(text(
        "SELECT pg_stat_get_xact_tuples_updated('driver_states'::regclass), "
        "pg_stat_get_xact_tuples_hot_updated('driver_states'::regclass)")).one()
    return int(row[0]), int(row[1])


def test_a_drivers_claim_and_release_are_updated_in_place(pg_units: Any) -> None:
    (driver,) = _seed(pg_units, 1)
    trip = new_id()
    with pg_units() as uow:
        claim = uow.drivers.claim_first([driver], trip, T0 + 1)
        assert claim.driver_id == driver
        assert uow.drivers.release(driver, trip, T0 + 2) is not None
        updated, in_place = _xact_updates(uow.connection)
        uow.commit()
    # Status, trip, time and version changed twice, and no index entry was written for it.
    assert updated == 2
    assert in_place == 2


def test_a_claim_on_a_table_without_statistics_reads_only_its_candidates(pg_units: Any) -> None:
    ids = _seed(pg_units, 3000)  # a fresh table: no ANALYZE has run
    candidates = ids[1000:1010]
    with pg_units() as uow:
        compiled = _CLAIM_FIRST.compile(dialect=uow.connection.dialect)
        params = compiled.construct_params(_claim_params(candidates, new_id(), T0 + 1))
        raw = uow.connection.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", params)
            plan = cur.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    scans = []

    def walk(node: dict[str, Any]) -> None:
        if "Scan" in node["Node Type"] and (node.get("Relation Name") == "driver_states"
                                            or "Index Name" in node):
            scans.append((node["Node Type"], node.get("Index Name"),
                          node["Actual Rows"] * node.get("Actual Loops", 1)))
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    assert scans, plan
    # Every read of driver_states goes by the primary key, and none reads more than the
    # candidates: with a status index the pick read that index's entry of each of the 3,000
    # available drivers, and the statuses' join read the whole table.
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    assert {index for _, index, _ in scans if index} == {"pk_driver_states"}, scans
    assert max(rows for _, _, rows in scans) <= len(candidates), scans
