"""Races at the repository level: two readers of one row both save it; exactly one of them
gets `Conflict` (the compare-and-set on `version`), on every backend.

Memory units hold the store's lock for their whole duration and SQLite write units begin
IMMEDIATE, so neither lets two units overlap: there the race is played as interleaved units
(read in A, read in B, save and commit A's change, then save B's: the database has moved on).
PostgreSQL lets two transactions overlap, so there two threads hold two open units, read the
row, then save and commit at once: the loser's UPDATE waits for the winner's row lock and then
finds the version gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from ridehail.kernel.errors import Conflict

Units = Callable[..., Any]


@dataclass(frozen=True)
class Race:
    repo: str  # the unit's attribute, e.g. "trips"
    seed: Callable[[Any], Any]  # stores the row in an open unit, returns its key
    change: Callable[[Any, int], None]  # writer n's change to the row it read


def _seeded(units: Units, race: Race) -> str:
    with units() as uow:
        key = race.seed(uow)
        uow.commit()
    return str(key)


def interleaved(units: Units, race: Race) -> None:
    """Read in unit A, read in unit B, A saves and commits, B saves: B gets the conflict and
    the row keeps A's change."""
    key = _seeded(units, race)
    with units() as a:
        first = getattr(a, race.repo).get(key)
    with units() as b:
        second = getattr(b, race.repo).get(key)
    race.change(first, 1)
    race.change(second, 2)
    with units() as a:
        getattr(a, race.repo).save(first)
        a.commit()
    with units() as b, pytest.raises(Conflict):
        getattr(b, race.repo).save(second)
    with units(readonly=True) as uow:
        assert getattr(uow, race.repo).get(key) == first


def overlapping(units: Units, race: Race) -> None:
    """Two threads, two open units on one row, released together by a barrier after their
    reads: exactly one save commits, the other raises Conflict (needs a database that lets
    two write transactions overlap: PostgreSQL)."""
    key = _seeded(units, race)
    read = threading.Barrier(2)

    def writer(n: int) -> tuple[str, Any]:
        with units() as uow:
            row = getattr(uow, race.repo).get(key)
            read.wait(timeout=30)
            race.change(row, n)
            try:
                getattr(uow, race.repo).save(row)
            except Conflict:
                return "conflict", row
            uow.commit()
            return "saved", row

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(writer, [1, 2]))
    assert sorted(o for o, _ in outcomes) == ["conflict", "saved"], outcomes
    winner = next(row for o, row in outcomes if o == "saved")
    with units(readonly=True) as uow:
        assert getattr(uow, race.repo).get(key) == winner


def overlapping_writes(units: Units, setup: Callable[[Any], Any],
                       write: Callable[[Any, Any, int], None]) -> None:
    """Two threads, two open units, each writing a row that clashes with the other's on a
    uniqueness rule (released together by a barrier): exactly one commits, the other gets
    Conflict from the database's unique index (PostgreSQL)."""
    with units() as uow:
        ctx = setup(uow)
        uow.commit()
    opened = threading.Barrier(2)

    def writer(n: int) -> str:
        with units() as uow:
            opened.wait(timeout=30)
            try:
                write(uow, ctx, n)
            except Conflict:
                return "conflict"
            uow.commit()
            return "saved"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(writer, [1, 2]))
    assert outcomes == ["conflict", "saved"], outcomes
