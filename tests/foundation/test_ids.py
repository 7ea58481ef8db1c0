from __future__ import annotations

import multiprocessing as mp
import threading

import pytest

from ridehail.kernel.ids import EPOCH_MS, IdGenerator, timestamp_ms, worker_of


def _ids_in_process(worker_id: int, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    gen = IdGenerator(worker_id)
    out.put([gen.next_int() for _ in range(n)])


def test_four_threads_give_unique_increasing_ids() -> None:
    gen = IdGenerator(7)
    per_thread: list[list[int]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)

    def run(slot: list[int]) -> None:
        barrier.wait()
        for _ in range(50_000):
            slot.append(gen.next_int())

    threads = [threading.Thread(target=run, args=(slot,)) for slot in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for slot in per_thread for i in slot]
    assert len(set(everything)) == 200_000
    for slot in per_thread:
        # Each thread sees ids strictly increasing: ordered by creation time.
        assert all(a < b for a, b in zip(slot, slot[1:], strict=False))
    assert all(worker_of(i) == 7 for i in everything[:100])


def test_two_processes_with_distinct_worker_ids_never_collide() -> None:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_ids_in_process, args=(w, 50_000, q)) for w in (1, 2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    a, b = results
    assert len(set(a) | set(b)) == 100_000
    assert {worker_of(i) for i in a} != {worker_of(i) for i in b}


def test_ids_sort_by_time_and_survive_a_clock_stepping_back() -> None:
    now = [EPOCH_MS + 10_000]
    gen = IdGenerator(3, clock_ms=lambda: now[0])
    first = gen.next_int()
    now[0] -= 5_000  # NTP steps the clock back
    second = gen.next_int()
    now[0] += 10_000
    third = gen.next_int()
    assert first < second < third
    assert timestamp_ms(first) == EPOCH_MS + 10_000
    assert timestamp_ms(third) == EPOCH_MS + 15_000


def test_sequence_overflow_waits_for_the_next_millisecond() -> None:
    """4,096 ids use up a millisecond's sequence: the 4,097th must wait for the clock to move
    on, not wrap the sequence to 0 (which would repeat the millisecond's first id). The clock
    stays put until the generator has polled it a few more times while waiting."""
    reads = [0]
    polls_before_tick = 4096 + 3

    def clock_ms() -> int:
        reads[0] += 1
        return EPOCH_MS if reads[0] <= polls_before_tick else EPOCH_MS + 1

    gen = IdGenerator(0, clock_ms=clock_ms)
    ids = [gen.next_int() for _ in range(4096)]
    assert len({timestamp_ms(i) for i in ids}) == 1
    assert reads[0] == 4096  # one clock read per id so far: the clock has not moved
    after = gen.next_int()
    assert reads[0] > polls_before_tick, "the 4,097th id did not wait for the clock"
    assert after not in ids
    assert after > ids[-1] and timestamp_ms(after) == EPOCH_MS + 1
    assert after & 0xFFF == 0  # a new millisecond starts its sequence again


def test_worker_id_range_is_checked() -> None:
    with pytest.raises(ValueError, match="worker_id"):
        IdGenerator(1024)
