"""The location feed: how a validated location update reaches the live index of every API process.

Two implementations behind one interface:

- `InProcessFeed` (embedded mode): straight into this process's index writer, as before.
- `RedisStreamFeed` (scaled mode): each request's batch becomes one entry of the Redis stream
  `ridehail:locations` (`XADD ... MAXLEN ~`, pipelined when a batch is split in chunks). Every
  API process runs a `StreamTailer` (`XREAD BLOCK`, from `$` at start) that applies the entries
  to its own index with `upsert_many`. The process that took the request applies its own
  entries through the stream too, so every index sees the updates in the same (stream) order.

A location is visible to nearby queries of any process after that process's next publish: the
visibility lag is stream latency + at most one publish interval (`bench/cluster.py` measures it).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from geoindex import GeoIndex
from ridehail.kernel.logging import get_logger

from .metrics import STREAM_LAG

log = get_logger(__name__)

LOCATIONS_STREAM = "ridehail:locations"
CHUNK_ROWS = 1000  # rows per stream entry: one entry is decoded in one go by every tailer


@dataclass
class FeedRows:
    """Resolved location updates as columns: who, where, and what the poster knew of the
    driver. The coordinates are as given (a float array, or a list whose odd values the index
    refuses by name); `available` and `ts` are arrays."""

    ids: list[str]
    lats: Sequence[Any] | NDArray[Any]
    lngs: Sequence[Any] | NDArray[Any]
    available: NDArray[np.bool_]
    classes: list[str]
    ts: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: NDArray[np.intp]) -> FeedRows:
        """These rows only (indices, in order)."""
        n = len(self.ids)
        return FeedRows(ids=pick(self.ids, rows, n), lats=pick(self.lats, rows, n),
                        lngs=pick(self.lngs, rows, n), available=self.available[rows],
                        classes=pick(self.classes, rows, n), ts=self.ts[rows])


def pick(column: Any, rows: NDArray[np.intp], n: int) -> Any:
    """`column`'s values at `rows` (indices into its n rows, in order): the column itself when
    that is all of them, an array's selection, or a list."""
    if rows.shape[0] == n:
        return column
    if isinstance(column, np.ndarray):
        return column[rows]
    return [column[i] for i in rows.tolist()]


@dataclass
class FeedResult:
    applied: int
    rejected: list[tuple[int, str, str]]  # (row, field, reason)


class LocationFeed(Protocol):
    def publish(self, rows: FeedRows) -> FeedResult: ...

    def post(self, rows: FeedRows, stamped: NDArray[np.bool_]
             ) -> tuple[NDArray[np.float64], FeedResult]:
        """`advance` over the rows, then `publish` of those not older than their driver's
        last time, as one step: the previous times per row, and the publish's result with its
        rows numbered as in `rows`."""
        ...

    def advance(self, ids: list[str], tss: NDArray[np.float64], stamped: NDArray[np.bool_]
                ) -> NDArray[np.float64]:
        """Per row, in order and atomically across the processes that share the feed: the
        driver's last accepted location time before this row (NaN: none yet), and move it to
        the row's time when the row is not older (`dispatch.locations.ts_refusal` refuses the
        older ones). A `stamped` row (the server gave it `now`) is never older: it counts as
        max(its time, the last)."""
        ...


def advance_then_publish(feed: LocationFeed, rows: FeedRows, stamped: NDArray[np.bool_]
                         ) -> tuple[NDArray[np.float64], FeedResult]:
    """`LocationFeed.post` as its two steps."""
    prev = feed.advance(rows.ids, rows.ts, stamped)
    return prev, publish_not_older(feed, rows, prev)


def publish_not_older(feed: LocationFeed, rows: FeedRows, prev: NDArray[np.float64]
                      ) -> FeedResult:
    """Publish the rows not older than their driver's last time before them (`prev`); the
    result's rows numbered as in `rows`."""
    older = rows.ts < prev  # NaN (no last time) is never newer
    if not older.any():
        return feed.publish(rows)
    keep = np.flatnonzero(~older)
    if not keep.shape[0]:
        return FeedResult(0, [])
    result = feed.publish(rows.take(keep))
    return FeedResult(result.applied, [(int(keep[r]), f, why)
                                       for r, f, why in result.rejected])


class InProcessFeed:
    """Embedded mode: updates go straight into this process's index writer.

    Each driver's last accepted time lives in a float column, at a row the driver keeps for
    the feed's life (as a dictionary entry would): a tick's rows are one lookup pass, then
    whole-column reads and writes, where a dictionary cost three passes (build, read, write;
    30% of a 9,000-driver tick's ingest, py-spy)."""

    def __init__(self, index: GeoIndex) -> None:
        self.index = index
        self._row_of: dict[str, int] = {}
        self._last = np.full(1024, math.nan)
        # One batch at a time: a new driver's row and the read-compare-move of each row's time
        # are one step for the batch (request threads post at once), as the Redis feed's script.
        self._lock = threading.Lock()

    @property
    def last_ts(self) -> dict[str, float]:
        """Each driver's last accepted location time."""
        with self._lock:
            last, rows = self._last, list(self._row_of.items())
        return {d: float(last[r]) for d, r in rows if not math.isnan(last[r])}

    def advance(self, ids: list[str], tss: NDArray[np.float64], stamped: NDArray[np.bool_]
                ) -> NDArray[np.float64]:
        with self._lock:
            return self._advance(ids, tss, stamped)

    def _advance(self, ids: list[str], tss: NDArray[np.float64], stamped: NDArray[np.bool_]
                 ) -> NDArray[np.float64]:
        n = len(ids)
        rows = np.fromiter(map(self._row_of.get, ids, itertools.repeat(-1)), np.int64, n)
        if (rows < 0).any():
            for r in np.flatnonzero(rows < 0).tolist():
                rows[r] = self._row(ids[r])
        if n > 1 and np.bincount(rows).max() > 1:  # a driver twice: its rows advance in turn
            return self._advance_in_turn(rows, tss, stamped)
        prev = self._last[rows]
        moves = np.isnan(prev) | (tss >= prev)
        self._last[rows[moves]] = tss[moves]
        prev[stamped & ~moves] = math.nan  # the server's own stamp: accepted, the last stays
        return prev

    def _row(self, driver_id: str) -> int:
        row = self._row_of.get(driver_id)
        if row is None:
            row = self._row_of[driver_id] = len(self._row_of)
            if row >= self._last.shape[0]:
                self._last = np.concatenate((self._last, np.full(self._last.shape[0],
                                                                 math.nan)))
        return row

    def _advance_in_turn(self, rows: NDArray[np.int64], tss: NDArray[np.float64],
                         stamped: NDArray[np.bool_]) -> NDArray[np.float64]:
        last = self._last
        out = np.empty(rows.shape[0])
        for r, (row, ts, now) in enumerate(zip(rows.tolist(), tss.tolist(), stamped.tolist(),
                                               strict=True)):
            prev = float(last[row])
            moves = math.isnan(prev) or ts >= prev
            if moves:
                last[row] = ts
            out[r] = math.nan if now and not moves else prev
        return out

    def post(self, rows: FeedRows, stamped: NDArray[np.bool_]
             ) -> tuple[NDArray[np.float64], FeedResult]:
        return advance_then_publish(self, rows, stamped)

    def publish(self, rows: FeedRows) -> FeedResult:
        if len(rows) == 1:  # the single-driver path keeps upsert's own validation errors
            self.index.upsert(rows.ids[0], rows.lats[0], rows.lngs[0],
                              available=bool(rows.available[0]), vehicle_class=rows.classes[0],
                              ts=float(rows.ts[0]))
            return FeedResult(1, [])
        lats: Any = rows.lats
        lngs: Any = rows.lngs
        try:
            # Arrays skip the index's per-value conversion of Python lists (a fleet tick is
            # thousands of rows); anything odd stays a list and is checked row by row.
            lats, lngs = (np.asarray(v, dtype=np.float64) for v in (lats, lngs))
        except (TypeError, ValueError):
            lats, lngs = rows.lats, rows.lngs
        result = self.index.upsert_many(rows.ids, lats, lngs, available=rows.available,
                                        vehicle_class=rows.classes, ts=rows.ts)
        return FeedResult(result.applied, [(int(r[0]), r.field, r.reason)
                                           for r in result.rejected])


def _bad_field(lat: float, lng: float, ts: float) -> tuple[str, str] | None:
    if not (isinstance(lat, float | int) and math.isfinite(lat) and -90 <= lat <= 90):
        return "lat", f"lat must be finite and in range, got {lat!r}"
    if not (isinstance(lng, float | int) and math.isfinite(lng) and -180 <= lng <= 180):
        return "lng", f"lng must be finite and in range, got {lng!r}"
    if not math.isfinite(ts):
        return "ts", f"ts must be finite, got {ts!r}"
    return None


# Per row: the previous last time (NaN for none), and the new one when the row is not older.
# One script per batch, so the check-and-set holds across every API process. The batch comes
# as three strings (the ids one a line, the times as float64 bytes, a '1' or '0' per row for
# stamped), the hash keeps each driver's time as its 8 bytes, and the answer is one string of
# float64 bytes: as 3 arguments per row and an array of decimal strings back, redis-py's packing
# and parsing and Python's float formatting were most of the ingest's time in the API process
# (py-spy --gil of bench/cluster.py's ingest: advance was 40% of the request threads' GIL).
_ADVANCE_ROWS = """
local out = {}
local tss, stamps, none = ARGV[2], ARGV[3], ARGV[4]
local older = false
local i = 0
for id in string.gmatch(ARGV[1], '[^\\n]+') do
  i = i + 1
  local raw = string.sub(tss, i * 8 - 7, i * 8)
  local ts = struct.unpack('<d', raw)
  local prev = redis.call('HGET', KEYS[1], id)
  local p = nil
  if prev then p = struct.unpack('<d', prev) end  -- a missing field is false in Lua, not nil
  if p == nil or ts >= p then
    redis.call('HSET', KEYS[1], id, raw)
    out[i] = prev or none
  elseif string.sub(stamps, i, i) == '1' then
    out[i] = none
  else
    out[i] = prev
    older = true
  end
end
"""
ADVANCE_LUA = _ADVANCE_ROWS + "return table.concat(out)\n"
# `post` in one round trip: the same check, then, when no row is older than its driver's last
# time, the batch's stream entry (ARGV[6] on, field and value pairs) added as given, capped at
# ARGV[5] entries. When a row is older nothing is added: the caller adds the others.
POST_LUA = _ADVANCE_ROWS + """
if not older then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
end
return {table.concat(out), older and 0 or 1}
"""
# The hash of last times, float64 bytes per driver (the decimal strings of the version before
# were kept under "ridehail:location-ts"): every API process of a city runs the same version.
LAST_TS_KEY = "ridehail:location-ts:f64"
_NONE = np.float64(math.nan).tobytes()


class RedisStreamFeed:
    """Scaled mode: batches go onto one Redis stream that every API process tails.

    Rows are validated here, before they are shared: a bad row must not reach every process.
    A Redis failure raises redis' ConnectionError, which the API renders as a 503 problem.
    """

    def __init__(self, redis: Any, origin: str, *, stream: str = LOCATIONS_STREAM,
                 maxlen: int = 100_000, last_ts_key: str = LAST_TS_KEY) -> None:
        self.redis = redis
        self.origin = origin
        self.stream = stream
        self.maxlen = maxlen
        self.last_ts_key = last_ts_key
        self._advance = redis.register_script(ADVANCE_LUA)
        self._post = redis.register_script(POST_LUA)

    def advance(self, ids: list[str], tss: NDArray[np.float64], stamped: NDArray[np.bool_]
                ) -> NDArray[np.float64]:
        if not ids:
            return np.zeros(0)
        got = self._advance(keys=[self.last_ts_key], args=_advance_args(ids, tss, stamped))
        return np.frombuffer(got, dtype="<f8").astype(np.float64)

    def post(self, rows: FeedRows, stamped: NDArray[np.bool_]
             ) -> tuple[NDArray[np.float64], FeedResult]:
        """One round trip to Redis instead of two (the order check's, the entry's) when the
        batch fits one entry and has no bad field: a single driver's ping paid both, and the
        wait on each reply (profiled under bench/api.py's pings on the scaled mode)."""
        n = len(rows)
        if not n or n > CHUNK_ROWS or rejections(rows):
            return advance_then_publish(self, rows, stamped)
        lats, lngs, ts = (np.asarray(c, dtype=np.float64) for c in (rows.lats, rows.lngs,
                                                                    rows.ts))
        entry = encode_entry(self.origin, rows.ids, lats, lngs, rows.available, ts,
                             rows.classes)
        args = [*_advance_args(rows.ids, ts, stamped), self.maxlen]
        for pair in entry.items():
            args += pair
        got, added = self._post(keys=[self.last_ts_key, self.stream], args=args)
        prev = np.frombuffer(got, dtype="<f8").astype(np.float64)
        if added:
            return prev, FeedResult(n, [])
        return prev, publish_not_older(self, rows, prev)

    def publish(self, rows: FeedRows) -> FeedResult:
        rejected = rejections(rows)
        if rejected and len(rows) == 1:
            raise ValueError(rejected[0][2])
        keep = np.ones(len(rows), dtype=bool)
        keep[[i for i, _field, _reason in rejected]] = False
        kept, n = np.flatnonzero(keep), len(rows)
        if kept.size:
            lats, lngs, ts = (np.asarray(pick(c, kept, n), dtype=np.float64)
                              for c in (rows.lats, rows.lngs, rows.ts))
            available = pick(rows.available, kept, n)
            ids, classes = pick(rows.ids, kept, n), pick(rows.classes, kept, n)
            pipe = self.redis.pipeline(transaction=False)
            for start in range(0, len(ids), CHUNK_ROWS):
                part = slice(start, start + CHUNK_ROWS)
                pipe.xadd(self.stream,
                          encode_entry(self.origin, ids[part], lats[part], lngs[part],
                                       available[part], ts[part], classes[part]),
                          maxlen=self.maxlen, approximate=True)
            pipe.execute()
        return FeedResult(int(kept.size), rejected)


def _advance_args(ids: list[str], tss: NDArray[np.float64], stamped: NDArray[np.bool_]
                  ) -> list[Any]:
    """The order check's ARGV[1..4] (`_ADVANCE_ROWS`): the ids a line, the times as float64
    bytes, a '1' or '0' per row for stamped, and the bytes that stand for no last time."""
    return ["\n".join(ids), np.ascontiguousarray(tss, dtype="<f8").tobytes(),
            np.where(stamped, b"1", b"0").tobytes(), _NONE]


def rejections(rows: FeedRows) -> list[tuple[int, str, str]]:
    """The rows that must not be shared, as (row, field, reason): checked on whole columns,
    row by row only for the ones refused (or when a column is not all numbers)."""
    try:
        lats, lngs, ts = (np.asarray(c) for c in (rows.lats, rows.lngs, rows.ts))
    except (TypeError, ValueError):
        lats = lngs = ts = np.empty(0)
    if not all(c.dtype.kind in "fiu" and c.shape == (len(rows),) for c in (lats, lngs, ts)):
        suspects: Any = range(len(rows))
    else:
        with np.errstate(invalid="ignore"):
            fine = (np.isfinite(lats) & (np.abs(lats) <= 90) & np.isfinite(lngs)
                    & (np.abs(lngs) <= 180) & np.isfinite(ts))
        suspects = np.flatnonzero(~fine).tolist()
    out = []
    for i in suspects:
        bad = _bad_field(rows.lats[i], rows.lngs[i], rows.ts[i])
        if bad is not None:
            out.append((i, bad[0], bad[1]))
    return out


# A stream entry of the location feed: one batch as columns. Numbers travel as the bytes of
# float64 arrays, ids and classes as lines: every process decodes an entry with a few calls
# instead of a JSON parse of each value (py-spy in bench/cluster.py: JSON encoding on publish
# and decoding in the tailers were a fifth of each process's GIL time). Every API process
# of a city must write and read the same version.
ENTRY_VERSION = b"2"


def encode_entry(origin: str, ids: list[str], lats: np.ndarray, lngs: np.ndarray,
                 available: np.ndarray, ts: np.ndarray, classes: list[str]) -> dict[str, Any]:
    return {"o": origin, "v": ENTRY_VERSION, "i": "\n".join(ids), "la": lats.tobytes(),
            "ln": lngs.tobytes(), "a": available.astype(np.uint8).tobytes(),
            "t": ts.tobytes(), "c": "\n".join(classes)}


def decode_entry(fields: dict[bytes, bytes]
                 ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(ids, lats, lngs, available, ts, classes) of an entry; ValueError when it is not one
    this version wrote whole."""
    if fields.get(b"v") != ENTRY_VERSION:
        raise ValueError(f"location entry of version {fields.get(b'v')!r}, "
                         f"not {ENTRY_VERSION!r}")
    ids = fields[b"i"].decode().split("\n")
    classes = fields[b"c"].decode().split("\n")
    lats, lngs, ts = (np.frombuffer(fields[k], dtype=np.float64) for k in (b"la", b"ln", b"t"))
    available = np.frombuffer(fields[b"a"], dtype=np.uint8).astype(bool)
    if not len(ids) == len(classes) == lats.size == lngs.size == ts.size == available.size:
        raise ValueError("location entry with columns of different lengths")
    return ids, lats, lngs, available, ts, classes


class DriverView(Protocol):
    """What a process knows of drivers, as a stream entry is applied with it (the driver
    directory, dispatch/drivers.py)."""

    def local_view(self, ids: list[str]) -> tuple[NDArray[np.intp], NDArray[np.bool_],
                                                  list[str], NDArray[np.intp]]: ...

    def writing_positions(self, ids: list[str]) -> AbstractContextManager[None]: ...


def apply_location_entry(index: GeoIndex, fields: dict[bytes, bytes], view: DriverView) -> int:
    """Apply one stream entry to this process's index. A driver this process knows gets its
    availability and class from this process's directory (kept current by driver events), so
    a poster's stale view cannot make a busy driver available here; a driver who went
    offline here is left out (the entry was posted before: events and locations travel on
    two streams, read by two threads); a driver never known here takes the poster's view."""
    ids, lats, lngs, available, ts, classes = decode_entry(fields)
    with view.writing_positions(ids):
        rows, known_available, known_classes, gone = view.local_view(ids)
        if rows.shape[0] == len(ids):
            available, classes = known_available, known_classes
        elif rows.shape[0]:
            available[rows] = known_available
            for r, vehicle_class in zip(rows.tolist(), known_classes, strict=True):
                classes[r] = vehicle_class
        if gone.shape[0]:
            n, keep = len(ids), np.ones(len(ids), np.bool_)
            keep[gone] = False
            at = np.flatnonzero(keep)
            ids, classes = pick(ids, at, n), pick(classes, at, n)
            lats, lngs, available, ts = lats[at], lngs[at], available[at], ts[at]
        return index.upsert_many(ids, lats, lngs, available=available, vehicle_class=classes,
                                 ts=ts).applied


class StreamTailer:
    """A daemon thread that reads Redis streams from `$` (new entries only), or from `since`
    (epoch seconds: entries added since then, e.g. a sliding window's worth), and hands each
    entry's fields to its stream's `handle`. It survives Redis going away: it reconnects with
    backoff and resumes after the last entry it saw, so a short outage loses nothing still in
    the stream.

    One tailer can read several streams (`also`) with one blocking XREAD: a use case's
    announcements on several streams (a trip request's demand and its driver's new status)
    then wake one thread once, not one thread per stream."""

    def __init__(self, redis: Any, stream: str, handle: Callable[[dict[bytes, bytes]], None],
                 *, name: str, block_ms: int = 1000, count: int = 200,
                 since: float | None = None) -> None:
        self.redis = redis
        self.handles: dict[str, Callable[[dict[bytes, bytes]], None]] = {}
        self.last_ids: dict[str, bytes | str] = {}
        self.block_ms = block_ms
        self.count = count
        self.connected = threading.Event()
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self.also(stream, handle, since=since)

    def also(self, stream: str, handle: Callable[[dict[bytes, bytes]], None], *,
             since: float | None = None) -> StreamTailer:
        """Read `stream` too, from `$` or from `since`; only before `start`."""
        if self._thread.is_alive() or stream in self.handles:
            raise ValueError(f"stream {stream!r}: add each stream once, before start()")
        self.handles[stream] = handle
        # Stream ids are "<ms>-<seq>": reading after "<ms of since>-0" starts at that instant.
        self.last_ids[stream] = "$" if since is None else f"{max(0, int(since * 1000))}-0"
        return self

    def start(self) -> None:
        self._thread.start()
        # Wait (briefly) until the first XREAD is issued: entries added after start() returns
        # are then seen. Bounded: a Redis that is down must not block the app's start-up.
        self._started.wait(5.0)

    def request_stop(self) -> None:
        """Tell the thread to end after its current wait; `stop` also waits for it."""
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(self.block_ms / 1000 + 5)

    def _resolve_start(self) -> None:
        for stream, last in self.last_ids.items():
            if last == "$":
                # Pin "$" to a concrete id, so a reconnect resumes here instead of skipping
                # ahead.
                info = self.redis.xinfo_stream(stream) if self.redis.exists(stream) else None
                self.last_ids[stream] = info["last-generated-id"] if info else b"0-0"

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._resolve_start()
                self.connected.set()
                self._started.set()
                backoff = 0.1
                pool = self.redis.connection_pool
                conn = pool.get_connection()
                try:
                    while not self._stop.is_set():
                        self._read(conn)
                except BaseException:
                    conn.disconnect()  # a reply half read must not reach the next user
                    raise
                finally:
                    pool.release(conn)
            except Exception as exc:  # noqa: BLE001 - Redis down: retry with backoff
                self.connected.clear()
                self._started.set()
                log.warning("stream tailer disconnected", streams=list(self.handles),
                            error=repr(exc), retry_in_s=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _read(self, conn: Any) -> None:
        """One XREAD on the tailer's own connection, its entries handed out. The command goes
        out and its reply comes back raw (nested lists, or a map on RESP3), without redis-py's
        client call: its retry wrapper, its pool round trip and its reply callback were about
        60% of an empty XREAD's CPU (137 against 64 us, and 109 against 43), and the XREADs
        10.7% of an API process's GIL time under bench/cluster.py's closed loop (py-spy --gil,
        3 processes)."""
        names = list(self.last_ids)
        conn.send_command("XREAD", "COUNT", self.count, "BLOCK", self.block_ms, "STREAMS",
                          *names, *(self.last_ids[n] for n in names))
        got = conn.read_response()  # an error reply is raised
        for raw_stream, entries in (got.items() if isinstance(got, dict) else got or ()):
            stream = decode(raw_stream)
            handle = self.handles[stream]
            for entry_id, flat in entries:
                self.last_ids[stream] = entry_id
                try:
                    handle(dict(zip(flat[::2], flat[1::2], strict=True)))
                except Exception:  # noqa: BLE001 - one bad entry must not stop us
                    log.exception("stream entry failed", stream=stream)
            if entries:
                STREAM_LAG.labels(stream).set(entry_age_s(entries[-1][0]))


def entry_age_s(entry_id: bytes | str, now: float | None = None) -> float:
    """How old a stream entry is: its id starts with Redis's clock in milliseconds."""
    ms = int(decode(entry_id).partition("-")[0])
    return max(0.0, (time.time() if now is None else now) - ms / 1000.0)


def redis_client(url: str, *, timeout_s: float = 2.0) -> Any:
    """A Redis client whose calls fail fast when Redis is down (the API turns that into 503)
    instead of hanging a request thread."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s + 3.0,
                                socket_connect_timeout=timeout_s, health_check_interval=15)


def decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

