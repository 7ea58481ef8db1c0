"""Issue 13, items 3 and 15, over HTTP: a back-dated location is a 422 naming `ts`; the pickup
PIN (the rider sees it, the driver enters it at start, a wrong one is a 422 naming `pin`); the
driver's no-show cancels the trip and the rider's fee is charged through the payment path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask

from tests.rides.conftest import (
    PICKUP,
    Api,
    await_trip,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_pin_no_show_fee_and_back_dated_location(make_app: Callable[..., Flask]) -> None:
    app = make_app(pickup_pin=True, no_show_wait_s=0.0, cancel_fee=700)
    api = Api(app.test_client())
    rider, driver = sign_up_rider(api), sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    now = app.extensions["dispatch"].clock.now()
    r = api.post("/v1/drivers/me/location", driver.token, {**PICKUP, "ts": _iso(now + 1)})
    assert r.status == 204, r.text
    r = api.post("/v1/drivers/me/location", driver.token, {**PICKUP, "ts": _iso(now - 1)})
    assert r.status == 422 and r.body["errors"][0]["field"] == "ts", r.text
    publish(app)

    def assigned_and_arrived() -> str:
        trip = request_trip(api, rider)
        [offer] = long_poll(api, driver, wait=0)
        assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
        assert api.post(f"/v1/trips/{trip['id']}/arrive", driver.token).status == 200
        return str(trip["id"])

    trip_id = assigned_and_arrived()
    pin = api.get(f"/v1/trips/{trip_id}", rider.token).body["pickup_pin"]
    assert isinstance(pin, str) and len(pin) == 4
    assert api.get(f"/v1/trips/{trip_id}", driver.token).body.get("pickup_pin") is None
    wrong = f"{(int(pin) + 1) % 10_000:04d}"
    for body in ({"pin": wrong}, {"pin": "12"}, None):
        r = api.post(f"/v1/trips/{trip_id}/start", driver.token, body)
        assert r.status == 422 and r.body["errors"][0]["field"] == "pin", (body, r.text)
    r = api.post(f"/v1/trips/{trip_id}/start", driver.token, {"pin": pin})
    assert r.status == 200 and r.body["state"] == "in_progress", r.text
    assert api.get(f"/v1/trips/{trip_id}", rider.token).body.get("pickup_pin") is None
    assert api.post(f"/v1/trips/{trip_id}/no-show", driver.token).status == 409
    assert api.post(f"/v1/trips/{trip_id}/complete", driver.token).status == 200

    publish(app)
    trip_id = assigned_and_arrived()
    assert api.post(f"/v1/trips/{trip_id}/no-show", rider.token).status == 403
    r = api.post(f"/v1/trips/{trip_id}/no-show", driver.token)
    assert r.status == 200, r.text
    assert r.body["state"] == "cancelled" and r.body["fare"]["amount"] == 700
    done = await_trip(api, rider, trip_id, lambda t: t["payment_state"] == "captured",
                      timeout=30.0)
    assert done["cancelled_by"] == "driver"
    with app.extensions["uow_factory"](readonly=True) as uow:
        lines = {e.kind: e.amount for e in uow.ledger.for_trip(trip_id)}
    assert lines["rider_charge"] == -700
    assert lines["driver_payout"] + lines["platform_fee"] == 700
