"""The embedded mode's trip traces (`LocalTraces`): every trip's points in pages of one shared
array, so a fleet tick's points are stored by a few array operations whatever their number.

A trip gets a slot on its first point; its slot's row of the page table lists the pages that
hold its points, `PAGE` at a time, in arrival order. A tick's batch is written in one go: the
rows' slots and their places (page, offset) are computed on whole columns, and a row that
starts a page takes a free one. Completing a trip gives its pages and slot back. A trip's
trace as a list per trip (one object per point) cost more to build, walk and free than the
rest of location ingest (py-spy, the simulator at 10,000 drivers); a flat array per trip
spent its time copying as it grew.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

PAGE = 64  # points per page: a 20-minute ride at one point every 4 s fills five


class LocalTraces:
    """Embedded mode: the traces in this process's memory (a `TraceStore`)."""

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._free_slots: list[int] = []
        self._count = np.zeros(0, np.int64)  # per slot: the trip's points
        self._table = np.full((0, 4), -1, np.int64)  # per slot: its pages, in order
        self._pages = np.zeros((0, PAGE, 3))
        self._free_pages = np.zeros(0, np.int64)  # a stack of unused pages

    def add(self, trip_ids: list[str], points: NDArray[np.float64]) -> None:
        if not trip_ids:
            return
        slots = np.fromiter(map(self._slot_of.get, trip_ids, itertools.repeat(-1)), np.int64,
                            len(trip_ids))
        if (slots < 0).any():
            for r in np.flatnonzero(slots < 0).tolist():
                slots[r] = self._slot(trip_ids[r])
        if slots.shape[0] > 1 and np.bincount(slots).max() > 1:  # a trip twice: in turn
            for r in range(slots.shape[0]):
                self._write(slots[r:r + 1], points[r:r + 1])
            return
        self._write(slots, points)

    def points(self, trip_id: str) -> NDArray[np.float64]:
        slot = self._slot_of.get(trip_id)
        if slot is None:
            return np.zeros((0, 3))
        n = int(self._count[slot])
        pages = self._table[slot, : -(-n // PAGE)]
        return self._pages[pages].reshape(-1, 3)[:n].copy()

    def drop(self, trip_id: str) -> None:
        slot = self._slot_of.pop(trip_id, None)
        if slot is None:
            return
        used = self._table[slot, : -(-int(self._count[slot]) // PAGE)]
        self._free_pages = np.concatenate((self._free_pages, used))
        self._table[slot] = -1
        self._count[slot] = 0
        self._free_slots.append(slot)

    # --- storage -------------------------------------------------------------------------------

    def _slot(self, trip_id: str) -> int:
        slot = self._slot_of.get(trip_id)
        if slot is not None:
            return slot
        if not self._free_slots:
            old = self._count.shape[0]
            new = max(64, 2 * old)
            self._count = np.concatenate((self._count, np.zeros(new - old, np.int64)))
            self._table = np.concatenate(
                (self._table, np.full((new - old, self._table.shape[1]), -1, np.int64)))
            self._free_slots = list(range(new - 1, old - 1, -1))
        slot = self._free_slots.pop()
        self._slot_of[trip_id] = slot
        return slot

    def _write(self, slots: NDArray[np.int64], points: NDArray[np.float64]) -> None:
        """Append row i of `points` to slot slots[i]'s trace (the slots are distinct)."""
        count = self._count[slots]
        page_no, offset = np.divmod(count, PAGE)
        if page_no.max() >= self._table.shape[1]:  # a long ride: a wider page table
            wider = np.full((self._table.shape[0], 2 * self._table.shape[1]), -1, np.int64)
            wider[:, : self._table.shape[1]] = self._table
            self._table = wider
        starts = np.flatnonzero(offset == 0)
        if starts.shape[0]:
            self._table[slots[starts], page_no[starts]] = self._take_pages(starts.shape[0])
        flat = self._pages.reshape(-1, 3)  # a view: page p's row o is p * PAGE + o
        flat[self._table[slots, page_no] * PAGE + offset] = points
        self._count[slots] = count + 1

    def _take_pages(self, k: int) -> NDArray[np.int64]:
        if self._free_pages.shape[0] < k:
            old = self._pages.shape[0]
            new = max(64, 2 * old, old + k)
            self._pages = np.concatenate((self._pages, np.zeros((new - old, PAGE, 3))))
            self._free_pages = np.concatenate(
                (np.arange(new - 1, old - 1, -1, dtype=np.int64), self._free_pages))
        taken = self._free_pages[-k:]
        self._free_pages = self._free_pages[:-k]
        return taken
