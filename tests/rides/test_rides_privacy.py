"""Who sees a trip and the driver's position, over HTTP (SQLite and PostgreSQL): a driver sees
an offered trip only while the offer is pending; the driver's live position goes to the trip's
rider only, and only while the driver is coming, waiting or driving (issue 13, item 1)."""

from __future__ import annotations

from flask import Flask

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


def test_a_driver_who_rejected_the_offer_no_longer_sees_the_trip(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    first, second = sign_up_driver(api), sign_up_driver(api)
    go_online(api, first, PICKUP["lat"] + 0.0005, PICKUP["lng"])
    go_online(api, second, PICKUP["lat"] + 0.0030, PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, first, wait=0)
    seen = api.get(f"/v1/trips/{trip['id']}", first.token)
    assert seen.status == 200 and "driver_location" not in seen.body
    assert api.post(f"/v1/offers/{offer['id']}/reject", first.token).status == 200
    assert api.get(f"/v1/trips/{trip['id']}", first.token).status == 404
    [again] = long_poll(api, second, wait=5)
    assert again["trip_id"] == trip["id"]
    assert api.post(f"/v1/offers/{again['id']}/accept", second.token).status == 200
    assert api.get(f"/v1/trips/{trip['id']}", first.token).status == 404  # still not theirs


def test_only_the_rider_sees_the_drivers_position_and_only_during_the_ride(
        app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"] + 0.0010, PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    t = trip["id"]
    assert "driver_location" not in api.get(f"/v1/trips/{t}", rider.token).body
    [offer] = long_poll(api, driver, wait=0)
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    for step in ("arrive", "start"):
        assert "driver_location" in api.get(f"/v1/trips/{t}", rider.token).body, step
        assert "driver_location" not in api.get(f"/v1/trips/{t}", driver.token).body, step
        assert api.post(f"/v1/trips/{t}/{step}", driver.token).status == 200
    assert "driver_location" in api.get(f"/v1/trips/{t}", rider.token).body
    assert api.post(f"/v1/trips/{t}/complete", driver.token).status == 200
    publish(app)
    after = api.get(f"/v1/trips/{t}", rider.token).body
    assert after["state"] == "completed" and "driver_location" not in after
    assert "driver_location" not in api.get(f"/v1/trips/{t}", driver.token).body
