"""Property-based fuzzing of every operation in /openapi.json (schemathesis): bounded examples
with a fixed seed, authenticated as the role each operation is for. No response may be a 5xx,
every response must match the document (status code, content type, body schema), and the ride
already stored (a trip with a pending offer) must come out unchanged."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.service import create_service
from tests.rides.conftest import (
    PICKUP,
    Api,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)

# Every response must be one the document declares: its status code, its content type and
# its body's schema (problems included).
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_schema_conformance]
# Logging out would revoke the fuzzing token itself; nothing else is skipped.
SKIPPED = {("DELETE", "/v1/sessions/current")}


def role_for(method: str, path: str, roles: list[str]) -> str | None:
    """Fuzz as a caller the route admits (a driver first: most ride endpoints are theirs)."""
    if not roles:
        return None
    for preferred in ("driver", "rider", "service", "admin"):
        if preferred in roles:
            return preferred
    return roles[0]


def stored(app: Flask, api: Api, world: dict[str, Any]) -> dict[str, Any]:
    with app.extensions["uow_factory"](readonly=True) as uow:
        offers = [(o.id, o.state.value, o.version) for o in uow.offers.for_trip(
            world["trip"]["id"])]
        st = uow.drivers.get(world["driver"].id)
    trip = api.get(f"/v1/trips/{world['trip']['id']}", world["rider"].token).body
    return {"trip": trip, "offers": offers, "driver": (st.status.value, st.version)}


def test_fuzzing_every_operation_conforms_to_the_schema_and_keeps_stored_data(
    make_app: Callable[..., Flask]
) -> None:
    # The stored offer must not expire on its own while the fuzzer runs (a loaded machine
    # can take longer than the default 15 s), or "unchanged" would fail for the wrong reason.
    app = make_app(offer_timeout_s=600.0)
    api = Api(app.test_client())
    # The stored ride: a rider's trip offered to a driver. The fuzzing accounts are others.
    rider, driver = sign_up_rider(api), sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    world = {"rider": rider, "driver": driver, "trip": request_trip(api, rider)}
    long_poll(api, driver, wait=0)
    tokens = {"rider": sign_up_rider(api).token, "service": create_service(
        app.extensions["uow_factory"], "fuzz")}
    fuzz_driver = sign_up_driver(api)
    go_online(api, fuzz_driver, PICKUP["lat"] + 0.01, PICKUP["lng"])
    tokens["driver"] = fuzz_driver.token
    before = stored(app, api, world)

    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    roles = roles_by_path(app)
    failures: list[tuple[str, str, int, str]] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: good
        method, path = operation.method.upper(), operation.path
        if (method, path) in SKIPPED or path.endswith("/ws"):
            continue
        role = role_for(method, path, roles.get(path, []))
        headers = {} if role is None or role not in tokens else {
            "Authorization": f"Bearer {tokens[role]}"}

        fuzz(operation, headers, failures)
        ran += 1
    assert ran >= 15, f"only {ran} operations fuzzed"
    assert failures == [], "\n\n".join(" ".join(map(str, f)) for f in failures)
    assert stored(app, api, world) == before


def fuzz(operation: Any, headers: dict[str, str], errors: list[tuple[str, str, int, str]]
         ) -> None:
    @settings(max_examples=10, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        if case.query and "wait" in case.query:
            case.query["wait"] = 0  # long-polls bounded, so the run stays fast
        resp = case.call(headers=headers)
        if resp.status_code >= 500:
            errors.append((case.method, case.formatted_path, resp.status_code, resp.text[:200]))
            return
        try:
            case.validate_response(resp, checks=CONFORMANCE)
        except AssertionError as exc:  # schemathesis's FailureGroup is one
            errors.append((case.method, case.formatted_path, resp.status_code,
                           f"{exc}\n{resp.text[:200]}"))

    run()


def roles_by_path(app: Flask) -> dict[str, list[str]]:
    """The roles `require` allows on each route (kept on the view for the OpenAPI builder)."""
    out: dict[str, list[str]] = {}
    for rule in app.url_map.iter_rules():
        meta = getattr(app.view_functions[rule.endpoint], "_openapi", {})
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        out[path] = list(meta.get("roles", []))
    return out
