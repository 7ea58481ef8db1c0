"""The app's error handlers, registered in one place: every error becomes problem+json."""

from __future__ import annotations

from flask import Flask, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from .kernel.errors import Problem, problem_response
from .kernel.logging import get_logger

log = get_logger(__name__)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description
        if status == 413:
            detail = f"request body larger than {app.config.get('MAX_CONTENT_LENGTH')} bytes"
        resp = problem_response(Problem(status, exc.name, detail))
        if status == 405 and exc.get_response().headers.get("Allow"):
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
        return resp

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _redis_down(exc: Exception) -> Response:
        # Scaled mode: the location stream and shared state live in Redis. Nothing was half
        # done (the database commit comes first or not at all); the client retries.
        log.warning("redis unavailable", error=repr(exc))
        return problem_response(Problem(
            503, "Service Unavailable",
            "Redis (the shared location stream and driver state) is unreachable; retry shortly",
            type_="https://ridehail.dev/problems/redis-unavailable",
            headers={"Retry-After": "1"}))

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        # A connection dropped mid-transaction (server restart, pg_terminate_backend,
        # failover): the transaction was rolled back, the pool (pool_pre_ping) replaces the
        # connection, and the client may retry. Any other database error is a bug: 500.
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            return _unexpected(exc)
        log.warning("database connection lost", error=repr(exc.orig))
        return problem_response(Problem(
            503, "Service Unavailable",
            "the database connection was lost; nothing was changed, retry shortly",
            type_="https://ridehail.dev/problems/database-unavailable",
            headers={"Retry-After": "1"}))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", error=repr(exc))
        return problem_response(
            Problem(500, "Internal Server Error", "the server failed; the error was logged")
        )
