"""Request parsing and validation with pydantic, plus the metadata the OpenAPI document is
generated from. Views declare what they take; invalid input becomes a 4xx naming the field.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import Problem

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """Base for JSON bodies: strict types (no "12" for 12), no NaN/inf, unknown fields refused."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")


class Query(BaseModel):
    """Base for query strings: values arrive as text, so coercion is lax; NaN still refused."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")


def _openapi(fn: Any) -> dict[str, Any]:
    meta = getattr(fn, "_openapi", None)
    if meta is None:
        meta = {"responses": {}}
        fn._openapi = meta
    return meta  # type: ignore[no-any-return]


def validation_problem(exc: ValidationError, where: str = "body") -> Problem:
    errors = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or where
        errors.append({"field": field, "message": err["msg"], "type": err["type"]})
    first = errors[0]
    return Problem(
        422,
        "Unprocessable Content",
        f"{first['field']}: {first['message']}",
        errors=errors,
    )


def _read_body() -> tuple[Any, str | None]:
    """The request's JSON body and the path of its first NUL string, if any. The raw bytes,
    never `request.data`, which first tries to parse the body as a form (py-spy: 5% of a
    location post); a form is then simply not JSON."""
    raw = request.get_data(cache=True)
    if not raw:
        raise Problem(400, "Bad Request", "the request needs a JSON body",
                      errors=[{"field": "body", "message": "missing"}])
    try:
        return _parse(raw)
    except ValueError as exc:
        raise Problem(400, "Bad Request", f"body is not valid JSON: {exc}",
                      errors=[{"field": "body", "message": "invalid JSON"}]) from None


MAX_DEPTH = 32  # nesting levels of a JSON body or frame; ours need 4


def loads(raw: str | bytes) -> Any:
    """JSON text (a body or a WebSocket frame) to values, or a ValueError that says what is
    wrong: not JSON, or nested deeper than MAX_DEPTH (a deep document would exhaust the
    parser's or our recursion: a 500 instead of a 400)."""
    return _parse(raw)[0]


def _parse(raw: str | bytes) -> tuple[Any, str | None]:
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise ValueError(str(exc)) from None
    _check_depth(value)
    return value, (_nul_path(value, "") if _may_hold_nul(raw) else None)


# A NUL reaches a parsed string only as the escape \u0000: strict JSON (json.loads' default)
# refuses a raw control character in a string, so only a body with the escape is searched for
# one; every body takes the depth check, which looks at containers alone. A walk of every value
# for both was 0.75 us of a batch row's 5.7 us in the view (cProfile of POST /v1/locations,
# 500 rows).
_NUL_ESCAPE = "\\u0000"


def _may_hold_nul(raw: str | bytes) -> bool:
    if isinstance(raw, str):
        return _NUL_ESCAPE in raw
    # json.loads also reads UTF-16 and UTF-32, where the escape is spelled in other bytes.
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        return True
    return _NUL_ESCAPE.encode() in raw


def _check_depth(value: Any) -> None:
    """ValueError past MAX_DEPTH (a deep document would exhaust our recursion, or a model's),
    one level at a time: a level's scalars are passed over by type at C speed (a batch row
    costs a set of its values' types)."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        kids: list[Any] = []
        for item in level:
            values = item.values() if type(item) is dict else item
            kinds = set(map(type, values))
            if kinds.isdisjoint(_CONTAINERS):
                continue
            kids.extend(values if kinds <= _CONTAINERS
                        else [v for v in values if type(v) in _CONTAINERS])
        depth += 1
        if kids and depth >= MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        level = kids


_CONTAINERS = frozenset((dict, list))


def _nul_path(value: Any, path: str) -> str | None:
    """Where the first NUL is, in document order, or None (PostgreSQL cannot store one, and no
    field of ours has a use for it). Recursive: a body's depth is checked first, and a query's
    values are flat."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    pairs = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for k, v in pairs:
        sub = f"{path}.{k}" if path else str(k)
        if isinstance(k, str) and "\x00" in k:
            return sub
        hit = _nul_path(v, sub)
        if hit is not None:
            return hit
    return None


def _refuse_nul(field: str | None, where: str) -> None:
    if field is not None:
        field = field if where == "body" or field != "body" else where
        raise Problem(422, "Unprocessable Content", f"{field}: contains a NUL character",
                      errors=[{"field": field, "message": "contains a NUL character",
                               "type": "string_nul"}])


def parse_body(model: type[BaseModel]) -> Any:
    """The request's body validated against `model`; also kept as `g.body` for what runs after
    the parse in the same request (a rate limit keyed on the email it carries)."""
    data, nul = _read_body()
    _refuse_nul(nul, "body")
    try:
        g.body = model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    return g.body


def body(model: type[BaseModel]) -> Callable[[F], F]:
    """Validate the JSON body against `model`; the view receives it as the `body` keyword."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["body"] = parse_body(model)
            return fn(*args, **kwargs)

        _openapi(wrapper)["body"] = model
        return wrapper  # type: ignore[return-value]

    return deco


def parse_query(model: type[M]) -> M:
    """This request's query string checked against `model` (a 422 problem naming the
    parameter otherwise); `query` below, and the connection edge, call it."""
    params = request.args.to_dict()
    _refuse_nul(_nul_path(params, ""), "query")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None


def query(model: type[BaseModel]) -> Callable[[F], F]:
    """Validate the query string against `model`; the view receives it as `query`."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["query"] = parse_query(model)
            return fn(*args, **kwargs)

        _openapi(wrapper)["query"] = model
        return wrapper  # type: ignore[return-value]

    return deco


def doc(
    summary: str,
    *,
    responses: dict[int, type[BaseModel] | str | None] | None = None,
    tags: list[str] | None = None,
    auth: bool = True,
) -> Callable[[F], F]:
    """Describe a view for the OpenAPI document (outermost decorator after the route)."""

    def deco(fn: F) -> F:
        meta = _openapi(fn)
        meta["summary"] = summary
        meta["responses"].update(responses or {})
        meta["tags"] = tags or []
        meta["auth"] = auth
        return fn

    return deco
