"""Available drivers per H3 cell, kept by the writer at publish time (surge's supply).

Only the drivers a publish touches are recounted: an available driver's cell is recomputed
when its position changed since it was last placed, and the counts move from its old cell to
its new one. A busy driver moves every tick but is not counted, so its cell is left alone.
The cell is H3's ``latlng_to_cell`` at the surge resolution, as surge places a request, never
the parent of a finer cell (H3 is not exactly nested: about 5% of points differ).
A snapshot holds its own counts, so readers never see a half-applied publish.
"""

from __future__ import annotations

import h3
import numpy as np
from h3.api import basic_int as h3i
from numpy.typing import NDArray


class CellSupply:
    """Per-slot cell codes and per-cell available counts of one index writer."""

    def __init__(self, resolution: int) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) \
                or not 0 <= resolution <= 15:
            raise ValueError(f"resolution: H3 resolutions are 0..15, got {resolution!r}")
        self.resolution = resolution
        self._code_of: dict[int, int] = {}
        self._cells: list[str] = []
        self._counts = np.zeros(0, np.int64)
        self._cell = np.zeros(0, np.int32)  # per slot: code of its cell, -1 not placed yet
        self._at = np.zeros((0, 2))  # per slot: the position its cell was computed for
        self._counted = np.zeros(0, np.int32)  # per slot: the cell it is counted in, or -1

    def _grow(self, n: int) -> None:
        old = self._cell.shape[0]
        if n <= old:
            return
        cap = max(n, 2 * old, 1024)
        for name, fill in (("_cell", -1), ("_counted", -1)):
            arr = np.full(cap, fill, np.int32)
            arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        at = np.full((cap, 2), np.nan)
        at[:old] = self._at
        self._at = at

    def _codes(self, cells: NDArray[np.int64]) -> NDArray[np.int32]:
        uniq, inv = np.unique(cells, return_inverse=True)
        code_of = self._code_of
        codes = []
        for c in uniq.tolist():
            code = code_of.get(c)
            if code is None:
                code = code_of[c] = len(self._cells)
                self._cells.append(h3.int_to_str(c))
            codes.append(code)
        return np.asarray(codes, np.int32)[inv.reshape(-1)]

    def update(self, slots: NDArray[np.int64], n_slots: int, lat: NDArray[np.float64],
               lng: NDArray[np.float64], alive: NDArray[np.uint8],
               avail: NDArray[np.uint8]) -> None:
        """Recount the given (dirty) slots from the writer's columns."""
        self._grow(n_slots)
        # Only an available driver is counted, so only its cell is needed: a busy driver's cell
        # waits until it is available again (its `_at` is then stale, so it is recomputed).
        counts_it = (alive[slots] != 0) & (avail[slots] != 0)
        counted = slots[counts_it]
        at = self._at[counted]
        moved = counted[(at[:, 0] != lat[counted]) | (at[:, 1] != lng[counted])]
        if moved.shape[0]:
            res, f = self.resolution, h3i.latlng_to_cell
            cells = np.fromiter((f(a, b, res) for a, b in zip(
                lat[moved].tolist(), lng[moved].tolist(), strict=True)), np.int64,
                moved.shape[0])
            self._cell[moved] = self._codes(cells)
            self._at[moved, 0] = lat[moved]
            self._at[moved, 1] = lng[moved]
        new = np.full(slots.shape[0], -1, np.int32)
        new[counts_it] = self._cell[counted]
        old = self._counted[slots]
        size = len(self._cells)
        counts = np.zeros(size, np.int64)
        counts[: self._counts.shape[0]] = self._counts
        counts -= np.bincount(old[old >= 0], minlength=size)
        counts += np.bincount(new[new >= 0], minlength=size)
        self._counted[slots] = new
        self._counts = counts

    def view(self) -> tuple[int, list[str], NDArray[np.int64]]:
        """What a snapshot keeps: the resolution, the cell ids (append-only) and the counts
        (never changed in place: `update` makes a new array)."""
        return self.resolution, self._cells, self._counts
