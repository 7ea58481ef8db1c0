"""Every route with an id in its path takes only a 64-bit id (the `<id:...>` converter): any
other segment is a 404 problem, never a 500 from the database driver. The fleet gateway's
`driver_id` field follows the same rule (a 422 naming the field)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from accounts.service import create_service
from tests.rides.conftest import Api, sign_up_driver, sign_up_rider

# "²" is a Unicode digit (str.isdigit accepts it, int() and BIGINT do not); 20 digits and
# 2**63 overflow a BIGINT; "-1" and "abc" are not ids at all.
BAD_IDS = ["%C2%B2", "9" * 20, str(2**63), "-1", "abc"]
UNKNOWN_ID = str(2**63 - 1)  # a well-formed id no row has

# (method, path, who, body)
ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", "/v1/trips/{id}", "rider", None),
    ("POST", "/v1/trips/{id}/cancel", "rider", None),
    ("POST", "/v1/trips/{id}/arrive", "driver", None),
    ("POST", "/v1/trips/{id}/start", "driver", None),
    ("POST", "/v1/trips/{id}/complete", "driver", None),
    ("POST", "/v1/offers/{id}/accept", "driver", None),
    ("POST", "/v1/offers/{id}/reject", "driver", None),
    ("GET", "/v1/trips/{id}/receipt", "rider", None),
    ("POST", "/v1/trips/{id}/rating", "rider", {"stars": 5}),
    ("GET", "/debug/trips/{id}/record", "rider", None),  # the map is public when embedded
]


@pytest.fixture
def tokens(api: Api) -> dict[str, str]:
    return {"rider": sign_up_rider(api).token, "driver": sign_up_driver(api).token}


def _assert_404_problem(r: Any, where: str) -> None:
    assert r.status == 404, (where, r.status, r.text)
    assert r.headers["Content-Type"].startswith("application/problem+json"), where
    assert r.body["status"] == 404, where


def test_a_malformed_id_is_a_404_problem_on_every_route(api: Api,
                                                        tokens: dict[str, str]) -> None:
    for bad in BAD_IDS:
        for method, path, who, body in ROUTES:
            where = f"{method} {path.format(id=bad)}"
            _assert_404_problem(api.call(method, path.format(id=bad), tokens[who], body),
                                where)


def test_an_unknown_well_formed_id_is_a_404_problem_on_every_route(
        api: Api, tokens: dict[str, str]) -> None:
    # The largest BIGINT reaches the database, which finds nothing (not a driver error).
    for method, path, who, body in ROUTES:
        where = f"{method} {path.format(id=UNKNOWN_ID)}"
        _assert_404_problem(api.call(method, path.format(id=UNKNOWN_ID), tokens[who], body),
                            where)


def test_a_batch_row_with_a_malformed_driver_id_is_a_422_naming_it(app: Flask,
                                                                   api: Api) -> None:
    service = create_service(app.extensions["uow_factory"], "gateway")
    for bad in ["²", "9" * 20, str(2**63), "-1", "abc", ""]:
        r = api.post("/v1/locations", service,
                     {"updates": [{"driver_id": "1", "lat": 0, "lng": 0},
                                  {"driver_id": bad, "lat": 0, "lng": 0}]})
        assert r.status == 422, (bad, r.text)
        assert [e["field"] for e in r.body["errors"]] == ["updates.1.driver_id"], (bad, r.text)
