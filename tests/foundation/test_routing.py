"""The one rule for ids (ridehail.kernel.routing.is_id), used by the `<id:...>` URL converter
and the DriverId body field; and the app's URL map, which remembers recent matches."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, g
from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule

from ridehail.app import App
from ridehail.kernel.routing import IdConverter, RecentMatches, RoutingMap, is_id


@pytest.mark.parametrize("value", ["0", "1", "384903438553104384", str(2**63 - 1), "9" * 18])
def test_decimal_ids_below_2_63_are_ids(value: str) -> None:
    assert is_id(value)


@pytest.mark.parametrize("value", [
    "", "²", "1²", "١٢٣",  # Unicode digits: str.isdigit says yes, int() and BIGINT say no
    "-1", "+1", " 1", "1 ", "1.5", "abc", "0x10", "1_000",
    str(2**63), "9" * 19, "9" * 20, "1" + "0" * 19,  # beyond a signed 64-bit BIGINT
])
def test_anything_else_is_not_an_id(value: str) -> None:
    assert not is_id(value)


def routing_app() -> Flask:
    """A Flask app on the URL map of ridehail's app (RoutingMap), with a view that pops a
    value from its arguments, as a url_value_preprocessor may."""
    app = App("routing")
    app.url_map.converters["id"] = IdConverter

    @app.url_value_preprocessor
    def pop_lang(_endpoint: str | None, values: dict[str, Any] | None) -> None:
        g.lang = None if values is None else values.pop("lang", None)

    @app.get("/<lang>/trips/<id:trip_id>")
    def trip(trip_id: str) -> str:
        return f"{g.lang} {trip_id}"

    return app


def test_a_path_matched_again_gets_the_same_arguments_in_a_dict_of_its_own() -> None:
    client = routing_app().test_client()
    for _ in range(3):  # the first match is remembered; its arguments were popped from
        response = client.get("/en/trips/42")
        assert (response.status_code, response.text) == (200, "en 42")


def test_a_path_that_does_not_match_is_refused_every_time() -> None:
    client = routing_app().test_client()
    assert [client.get("/en/trips/x").status_code for _ in range(2)] == [404, 404]
    assert client.post("/en/trips/42").status_code == 405


def test_a_rule_added_after_a_match_is_matched() -> None:
    urls = RoutingMap([Rule("/trips/<trip_id>", endpoint="trip")])
    assert urls.bind("testserver").match("/trips/fares") == ("trip", {"trip_id": "fares"})
    with pytest.raises(NotFound):
        urls.bind("testserver").match("/trips/42/fare")
    urls.add(Rule("/trips/fares", endpoint="fares"))  # a static part wins over a variable
    urls.add(Rule("/trips/<trip_id>/fare", endpoint="fare"))
    assert urls.bind("testserver").match("/trips/fares") == ("fares", {})
    assert urls.bind("testserver").match("/trips/42/fare") == ("fare", {"trip_id": "42"})


def test_the_remembered_matches_are_bounded() -> None:
    urls = RoutingMap([Rule("/trips/<trip_id>", endpoint="trip")])
    adapter = urls.bind("testserver")
    for i in range(RecentMatches.SIZE + 10):
        assert adapter.match(f"/trips/{i}") == ("trip", {"trip_id": str(i)})
    matcher = urls._matcher
    assert isinstance(matcher, RecentMatches)
    assert 0 < len(matcher._answers) <= RecentMatches.SIZE
