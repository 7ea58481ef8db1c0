"""Errors every layer raises: `Problem` (rendered as RFC 9457 problem+json) and `Conflict`
(a concurrent change won a compare-and-set). The app registers the handlers in one place
(`ridehail/errors.py`)."""

from __future__ import annotations

from typing import Any

from flask import Response, json

PROBLEM_MIME = "application/problem+json"


class Conflict(Exception):
    """A concurrent change won: the row's version moved, or a uniqueness rule refused the row."""


class Problem(Exception):
    """An error the client can act on. Raised anywhere below a view; rendered as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def problem_response(problem: Problem) -> Response:
    resp = Response(json.dumps(problem.body()), status=problem.status, mimetype=PROBLEM_MIME)
    for k, v in problem.headers.items():
        resp.headers[k] = v
    return resp


def not_found(what: str, id_: str) -> Problem:
    return Problem(404, "Not Found", f"{what} {id_!r} does not exist")
