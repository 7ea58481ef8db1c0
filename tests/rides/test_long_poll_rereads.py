"""The offers long-poll, on the edge (ridehail/edge/driver_channel.py) and in the threaded Flask
view (dispatch/api.py), and lost wake-ups: one
process's channel loses none, so a wait that ends without one answers without reading the
offers again; a channel relayed between processes can lose one (Redis away), so there the
long-poll reads again at the end of its wait and finds the offer anyway.

A lost wake-up is made for real: the matcher publishes the offer to a channel nobody listens
to, as a relay would that lost the message."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from flask import Flask

from ridehail.edge.asgi import EdgeApp
from ridehail.kernel.channel import Channel
from tests.rides.conftest import (
    PICKUP,
    Api,
    go_online,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


class Relayed(Channel):
    """The offers channel as the scaled mode's relay presents it: it may lose messages."""

    reliable = False


def long_poll_losing_the_wake_up(app: Flask, api: Api, wait_s: float) -> list[Any]:
    """A driver long-polls with `wait_s`; once the edge holds the poll, a rider requests a
    trip at the driver's spot and the offer's wake-up goes nowhere. What the poll answers."""
    driver, rider = sign_up_driver(api), sign_up_rider(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    edge_app = EdgeApp(app)
    edge = edge_app.edge
    matcher = edge.engine.matcher
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never hangs up
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        edge.start()
        scope = {"type": "http", "method": "GET", "path": "/v1/drivers/me/offers",
                 "query_string": f"wait={wait_s}".encode(), "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
                 "root_path": "",
                 "headers": [(b"authorization", f"Bearer {driver.token}".encode())]}
        poll = asyncio.get_running_loop().create_task(edge_app(scope, receive, send))
        while edge.registry.counts["poll"] == 0:  # held: its first read found nothing
            await asyncio.sleep(0.005)
        matcher.channel = Channel("lost")  # the wake-up of the next offer reaches nobody
        trip = await asyncio.to_thread(request_trip, api, rider)
        offered = await asyncio.to_thread(api.get, f"/v1/trips/{trip['id']}", rider.token)
        assert offered.body["state"] == "requested"
        await poll
        edge.pool.shutdown(wait=True)

    asyncio.run(run())
    start, body = sent
    assert start["status"] == 200
    answer: list[Any] = json.loads(body["body"])
    return answer


def test_a_relayed_channel_long_poll_reads_again_and_finds_the_offer_its_wake_up_lost(
        app: Flask, api: Api) -> None:
    app.extensions["dispatch"].channel.__class__ = Relayed
    offers = long_poll_losing_the_wake_up(app, api, wait_s=1)
    assert len(offers) == 1


def test_a_single_process_long_poll_without_a_wake_up_answers_without_reading_again(
        app: Flask, api: Api) -> None:
    assert app.extensions["dispatch"].channel.reliable
    offers = long_poll_losing_the_wake_up(app, api, wait_s=1)
    assert offers == []  # read again, it would have found the offer


def threaded_long_poll_losing_the_wake_up(app: Flask, api: Api) -> list[Any]:
    """The same, with the long-poll served by the Flask view (a WSGI host's thread waits)."""
    driver, rider = sign_up_driver(api), sign_up_rider(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    eng = app.extensions["dispatch"]
    answer: list[Any] = []
    poll = threading.Thread(target=lambda: answer.append(
        Api(app.test_client()).get("/v1/drivers/me/offers?wait=1", driver.token)))
    poll.start()
    deadline = time.monotonic() + 10
    while eng.channel.subscribers(driver.id) == 0:  # held: its first read found nothing
        assert time.monotonic() < deadline, "the long-poll never waited"
        time.sleep(0.005)
    eng.matcher.channel = Channel("lost")  # the wake-up of the next offer reaches nobody
    request_trip(api, rider)
    poll.join(10)
    (resp,) = answer
    assert resp.status == 200
    offers: list[Any] = resp.body
    return offers


def test_the_threaded_view_reads_again_on_a_relayed_channel(app: Flask, api: Api) -> None:
    app.extensions["dispatch"].channel.__class__ = Relayed
    assert len(threaded_long_poll_losing_the_wake_up(app, api)) == 1


def test_the_threaded_view_answers_without_reading_again_in_one_process(
        app: Flask, api: Api) -> None:
    assert threaded_long_poll_losing_the_wake_up(app, api) == []
