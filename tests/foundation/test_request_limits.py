"""Limits on what comes in, for every JSON body (and WebSocket frame, through the same
`ridehail.kernel.validation.loads`): nesting depth, and an unknown HTTP method on /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ridehail.app import create_app, shutdown
from ridehail.kernel.validation import MAX_DEPTH, loads
from ridehail.settings import Settings, SettingsError


@pytest.fixture
def client(sqlite_settings: Settings) -> Iterator[FlaskClient]:
    app: Flask = create_app(sqlite_settings, start_background=False)
    yield app.test_client()
    shutdown(app)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 990, 100_000])
def test_a_deeply_nested_body_is_a_400_naming_the_body(client: FlaskClient, depth: int) -> None:
    body = "[" * depth + "]" * depth
    resp = client.post("/v1/riders", data=body, content_type="application/json")
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    problem = resp.get_json(force=True)
    assert problem["errors"][0]["field"] == "body" and "nested" in problem["detail"]


def test_an_unclosed_deep_body_is_a_400_too(client: FlaskClient) -> None:
    resp = client.post("/v1/riders", data="[" * 100_000, content_type="application/json")
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"


def test_nesting_within_the_limit_is_still_validated_as_usual(client: FlaskClient) -> None:
    nested: object = "x"
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    resp = client.post("/v1/riders", json={"name": nested, "email": "a@example.com",
                                           "password": "long enough pass"})
    assert resp.status_code == 422 and resp.get_json(force=True)["errors"][0]["field"] == "name"


def test_loads_refuses_depth_and_nul_is_found_without_recursion() -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        loads("{\"a\":" * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1))
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def _nested(depth: int, wrap: str) -> object:
    """`depth` containers, the deepest first, each with scalar siblings beside its child."""
    inner: object = {"x": 1.5, "y": "s"} if wrap == "dict" else [1, "s", None]
    for level in range(depth - 1):
        inner = {"k": inner, "n": level, "t": True} if (level + (wrap == "dict")) % 2 \
            else ["a", inner, 2.0]
    return inner


@pytest.mark.parametrize("wrap", ["dict", "list"])
@pytest.mark.parametrize("depth", [1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 5])
def test_a_body_without_a_nul_is_held_to_the_same_depth_as_one_with(depth: int,
                                                                     wrap: str) -> None:
    # The body without the \u0000 escape is not searched for a NUL; with it, it is. Both are
    # refused exactly past MAX_DEPTH levels.
    import json

    doc = _nested(depth, wrap)
    plain = json.dumps(doc)
    with_nul = json.dumps({"nul": "a\x00b", "doc": doc})  # one level deeper
    if depth > MAX_DEPTH:
        with pytest.raises(ValueError, match="nested deeper"):
            loads(plain)
    else:
        assert loads(plain) == doc
    if depth + 1 > MAX_DEPTH:
        with pytest.raises(ValueError, match="nested deeper"):
            loads(with_nul)
    else:
        assert loads(with_nul)["doc"] == doc


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32-be"])
def test_a_nul_is_found_in_any_encoding_json_reads(encoding: str) -> None:
    from ridehail.kernel.validation import _parse

    raw = '{"updates": [{"driver_id": "1"}, {"driver_id": "2\\u0000"}]}'.encode(encoding)
    assert _parse(raw)[1] == "updates.1.driver_id"
    # A backslash before "u0000" is text, not a NUL.
    assert _parse('{"a": "\\\\u0000"}'.encode(encoding)) == ({"a": "\\u0000"}, None)


def test_a_nul_inside_a_nested_field_is_named(client: FlaskClient) -> None:
    resp = client.post("/v1/riders", json={"name": "ok", "email": "a@example.com",
                                           "password": "long enough pass", "phone": "1\x002"})
    assert resp.status_code == 422
    assert resp.get_json(force=True)["errors"][0]["field"] == "phone"


def test_made_up_methods_share_one_metrics_label(client: FlaskClient) -> None:
    for method in ("FOOA", "FOOB", "BREW"):
        client.open("/health", method=method)
    text = client.get("/metrics").get_data(as_text=True)
    assert "FOO" not in text and "BREW" not in text
    assert 'ridehail_http_requests_total{endpoint="unmatched",method="other",status="405"} 3.0' \
        in text


def _metrics_app(tmp_path: Path, **overrides: object) -> Flask:
    from tests.conftest import make_settings

    return create_app(make_settings(tmp_path, **overrides), start_background=False)


def test_closed_metrics_answer_only_the_monitoring_network_or_a_service_token(
        tmp_path: Path) -> None:
    from accounts.service import create_service

    app = _metrics_app(tmp_path, metrics_public=False, metrics_networks="10.9.0.0/16")
    try:
        c = app.test_client()
        outside = {"REMOTE_ADDR": "192.0.2.7"}
        assert c.get("/metrics", environ_base=outside).status_code == 401
        assert c.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.3.4"}).status_code == 200
        token = create_service(app.extensions["uow_factory"], "prometheus")
        ok = c.get("/metrics", environ_base=outside, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and b"ridehail_http_requests_total" in ok.data
    finally:
        shutdown(app)


def test_metrics_are_closed_by_default_in_the_scaled_mode_only() -> None:
    assert Settings.from_env(env={}).metrics_open
    assert not Settings.from_env(env={}, redis_url="redis://127.0.0.1:6379/0").metrics_open
    with pytest.raises(SettingsError, match="RIDEHAIL_METRICS_NETWORKS"):
        Settings.from_env(env={"RIDEHAIL_METRICS_NETWORKS": "10.0.0.0/99"})
