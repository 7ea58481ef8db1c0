"""Database work per trip request and per long-poll, counted over the public API on SQLite:
transactions begun, statements run, and reads of each table. Prints one JSON document.

    .venv/bin/python bench/trip_request_io.py

It uses only `create_app` and HTTP, so the same script measures any commit (the figures in
docs/architecture.md compare the commit before the restructure with this one).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ridehail.app import create_app, shutdown  # noqa: E402
from ridehail.settings import Settings  # noqa: E402

PICKUP = {"lat": 40.7580, "lng": -73.9855}
DROPOFF = {"lat": 40.7680, "lng": -73.9819}
TABLE = re.compile(r"\bFROM (\w+)", re.IGNORECASE)


class Counts:
    def __init__(self) -> None:
        self.begins = 0
        self.statements = 0
        self.reads: Counter[str] = Counter()

    def snapshot(self) -> dict[str, Any]:
        return {"transactions": self.begins, "statements": self.statements,
                "reads": dict(sorted(self.reads.items()))}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rh-io-"))
    settings = Settings.from_env(database_url=f"sqlite:///{tmp / 'io.db'}", var_dir=tmp,
                                 rate_limit_enabled=False,
                                 dispatch_policy="greedy")
    app = create_app(settings, start_background=False)
    client = app.test_client()
    try:
        rider = client.post("/v1/riders", json={"name": "R", "email": "r@example.com",
                                                "password": "correct horse battery"}).json
        driver = client.post("/v1/drivers", json={
            "name": "D", "email": "d@example.com", "password": "correct horse battery",
            "vehicle": {"make": "Kia", "model": "Niro", "plate": "T 1", "seats": 4,
                        "vehicle_class": "standard"}}).json
        rh = {"Authorization": f"Bearer {rider['token']}"}
        dh = {"Authorization": f"Bearer {driver['token']}"}
        client.put("/v1/drivers/me/status", json={"status": "online"}, headers=dh)
        client.post("/v1/drivers/me/location", json=PICKUP, headers=dh)
        app.extensions["dispatch"].index.publish()
        client.get("/v1/me", headers=rh)  # tokens are cached per process: warm both
        client.get("/v1/me", headers=dh)

        counts = Counts()
        db = app.extensions["engine"]

        @event.listens_for(db, "begin")
        def _begin(conn: Any) -> None:
            counts.begins += 1

        @event.listens_for(db, "before_cursor_execute")
        def _stmt(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
                return
            counts.statements += 1
            if statement.lstrip().upper().startswith("SELECT"):
                for table in TABLE.findall(statement):
                    counts.reads[table] += 1

        resp = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF},
                           headers=rh)
        assert resp.status_code == 201, resp.json
        request = counts.snapshot()
        counts.__init__()  # type: ignore[misc]
        offers = client.get("/v1/drivers/me/offers?wait=0", headers=dh).json
        assert len(offers) == 1, offers
        poll = counts.snapshot()
    finally:
        shutdown(app)
    print(json.dumps({
        "summary": {"trip_request_transactions": request["transactions"],
                    "trip_request_dispatch_record_reads": request["reads"].get(
                        "dispatch_records", 0),
                    "long_poll_transactions": poll["transactions"]},
        "trip_request": request, "long_poll_with_one_offer": poll,
    }, indent=2))


if __name__ == "__main__":
    main()
