"""The embedded broker writes each message atomically: the reader, which takes any
`*.<queue>.msg` file it lists without looking at locks, never sees half a message."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from ridehail import broker


def _channel(tmp_path: Path) -> Any:
    conn = Connection(f"{broker.ALIAS}://", transport_options={
        "data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control")})
    (tmp_path / "control").mkdir()
    return conn, conn.default_channel


def test_a_message_appears_under_its_queue_name_only_when_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, channel = _channel(tmp_path)
    assert isinstance(channel, broker.AtomicChannel)
    seen: list[tuple[str, list[str]]] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str) -> None:
        # Just before the message takes its name, no file the reader would take exists, and
        # the written one is complete.
        listed = [n for n in os.listdir(tmp_path) if n.endswith(".q.msg")]
        seen.append((Path(src).read_text(), listed))
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", spying_replace)
    channel._put("q", {"body": "x" * 100_000})
    [(written, listed)] = seen
    assert listed == [] and written.endswith("}")
    assert channel._get("q") == {"body": "x" * 100_000}
    assert [n for n in os.listdir(tmp_path) if n.endswith(".part")] == []
    conn.release()


def test_the_worker_loop_drains_in_short_turns_so_a_stop_is_seen_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery's blocking loop asks for 2 s drains and looks at its stop flag only between them;
    the transport hands kombu at most `DRAIN_TURN_S` a turn. A caller with no timeout still
    waits for a message."""
    from kombu.transport import filesystem

    asked: list[float | None] = []

    def record(self: Any, connection: Any, timeout: float | None = None) -> None:
        asked.append(timeout)

    monkeypatch.setattr(filesystem.Transport, "drain_events", record)
    conn, _channel_ = _channel(tmp_path)
    conn.drain_events(timeout=2.0)  # what celery.worker.loops.synloop asks for
    conn.drain_events(timeout=0.01)
    conn.drain_events()
    assert asked == [broker.DRAIN_TURN_S, 0.01, None]
    conn.release()
