"""The HTTP mode's client of the REST API: one `requests.Session` per thread, and every answer
that is not 2xx (or a request that failed on the way) counted by its reason and logged.

A reason reads like `POST /v1/trips 409: rider N already has an open trip`: the method, the
path with ids as N, the status and the problem+json's detail with numbers as N, so refusals of
one kind add up to one line however many trips they concern. The first refusal of each reason
is logged at once; after that, one summary line per `LOG_EVERY_S` wall seconds at most, so a
flood of refusals neither hides nor drowns the log.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import threading
import time
from collections import Counter
from typing import Any

import requests

TIMEOUT_S = 10.0
LOG_EVERY_S = 30.0

log = logging.getLogger("simulator.http")


def reason_of(method: str, path: str, status: int | str, body: str) -> str:
    """The refusal's reason: method, path and detail with ids and numbers as N."""
    where = re.sub(r"/\d+", "/N", path.split("?")[0])
    detail = body.strip()
    try:
        doc = jsonlib.loads(body)
        if isinstance(doc, dict):
            detail = str(doc.get("detail") or doc.get("title") or "")
    except ValueError:
        pass
    detail = re.sub(r"\d+", "N", detail)[:120]
    return f"{method} {where} {status}: {detail}" if detail else f"{method} {where} {status}"


class Refusals:
    """Counts by reason (thread-safe), with rate-limited logging."""

    def __init__(self, log_every_s: float = LOG_EVERY_S) -> None:
        self.counts: Counter[str] = Counter()
        self.log_every_s = log_every_s
        self._lock = threading.Lock()
        self._since_log: Counter[str] = Counter()
        self._last_log = time.monotonic()

    def add(self, reason: str) -> None:
        with self._lock:
            first = reason not in self.counts
            self.counts[reason] += 1
            if first:
                log.warning("refused: %s", reason)
                return
            self._since_log[reason] += 1
            if time.monotonic() - self._last_log < self.log_every_s:
                return
            summary, self._since_log = self._since_log, Counter()
            self._last_log = time.monotonic()
        log.warning("refusals in the last %.0f s: %s", self.log_every_s,
                    "; ".join(f"{n} x {r}" for r, n in summary.most_common()))

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def matching(self, text: str) -> int:
        """How many refusals name `text` in their reason (e.g. "open trip")."""
        with self._lock:
            return sum(n for r, n in self.counts.items() if text in r)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts.most_common())


class Api:
    """Thin JSON client; one `requests.Session` per thread (sessions are not thread-safe).
    `call` answers the decoded body, or None when the server refused (the reason is in
    `refusals` and `last_reason`) or the request failed on the way."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._local = threading.local()
        self.refusals = Refusals()

    @property
    def last_reason(self) -> str | None:
        """The reason of this thread's last refused call (None after a success)."""
        return getattr(self._local, "reason", None)

    def call(self, method: str, path: str, token: str | None = None, json: Any = None) -> Any:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._local.reason = None
        try:
            r = s.request(method, self.url + path, json=json, headers=headers,
                          timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            self._refused(reason_of(method, path, type(exc).__name__, ""))
            return None
        if not 200 <= r.status_code < 300:
            self._refused(reason_of(method, path, r.status_code, r.text))
            return None
        return r.json() if r.content else {}

    def _refused(self, reason: str) -> None:
        self._local.reason = reason
        self.refusals.add(reason)

    def sign_up(self, role: str, n: int, tag: str) -> list[tuple[str, str]]:
        out = []
        for k in range(n):
            body: dict[str, Any] = {"name": f"sim {role} {k}", "password": "sim-password-1",
                                    "email": f"sim-{tag}-{role}-{k}@example.com"}
            if role == "driver":
                body["vehicle"] = {"make": "Toyota", "model": "Prius",
                                   "plate": f"S{k:06d}"[-8:], "seats": 4,
                                   "vehicle_class": "standard"}
            got = self.call("POST", f"/v1/{role}s", json=body)
            if got is None:
                raise RuntimeError(f"could not sign up a {role} at {self.url}: "
                                   f"{self.last_reason}")
            out.append((str(got["id"]), str(got["token"])))
        return out
