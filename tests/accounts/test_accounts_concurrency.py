"""Twenty clients signing up the same email at once: one account, nineteen 409s, no 500s
(SQLite and PostgreSQL, through the API and the SQL repository)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from accounts.tables import accounts

THREADS = 20


def test_concurrent_sign_ups_with_one_email(
    app: Flask, rider_body: Any, driver_body: Any, unique_email: Any
) -> None:
    email = unique_email("race")
    start = threading.Barrier(THREADS)
    statuses: list[int] = []
    lock = threading.Lock()

    def sign_up(i: int) -> None:
        client = app.test_client()
        # Mixed case and mixed roles: the uniqueness is on the normalised email.
        addr = email.upper() if i % 2 else email
        path, body = (("/v1/drivers", driver_body(addr)) if i % 3 == 0
                      else ("/v1/riders", rider_body(addr)))
        start.wait()
        resp = client.post(path, json=body)
        with lock:
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert Counter(statuses) == {201: 1, 409: THREADS - 1}
    with app.extensions["uow_factory"](readonly=True) as uow:
        n = uow.connection.execute(
            select(func.count()).select_from(accounts).where(accounts.c.email == email)
        ).scalar_one()
    assert n == 1
