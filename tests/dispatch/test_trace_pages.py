"""The embedded trace store against a plain list per trip: the same points, in arrival order,
through new pages, a wider page table, trips twice in one batch, and slots and pages reused."""

from __future__ import annotations

import numpy as np
import pytest

from dispatch.trace_pages import PAGE, LocalTraces


@pytest.mark.parametrize("seed", range(5))
def test_every_trip_gets_back_its_points_in_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    store = LocalTraces()
    expected: dict[str, list[list[float]]] = {}
    live: list[str] = []
    made = 0
    for tick in range(400):
        while len(live) < 30:
            live.append(f"t{made}")
            made += 1
        batch = [t for t in live if rng.random() < 0.8] + ["long"]  # one ride all along
        if tick % 7 == 0 and batch:
            batch.append(batch[0])  # a trip twice in one batch
        pts = np.column_stack((np.full(len(batch), float(tick)), rng.random((len(batch), 2))))
        store.add(batch, pts)
        for trip_id, p in zip(batch, pts.tolist(), strict=True):
            expected.setdefault(trip_id, []).append(p)
        for trip_id in [t for t in live if rng.random() < 0.01]:
            assert store.points(trip_id).tolist() == expected.pop(trip_id, [])
            store.drop(trip_id)
            live.remove(trip_id)
    longest = max(len(v) for v in expected.values())
    assert longest > 4 * PAGE  # the page table had to widen
    for trip_id, pts_ in expected.items():
        assert store.points(trip_id).tolist() == pts_
    assert store.points("never").shape == (0, 3)
    store.drop("never")  # nothing to drop


def test_a_dropped_trip_leaves_no_points_behind() -> None:
    store = LocalTraces()
    store.add(["a", "b"], np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    store.drop("a")
    store.add(["c"], np.array([[7.0, 8.0, 9.0]]))  # takes a's slot and page again
    assert store.points("a").shape == (0, 3)
    assert store.points("c").tolist() == [[7.0, 8.0, 9.0]]
    assert store.points("b").tolist() == [[4.0, 5.0, 6.0]]
