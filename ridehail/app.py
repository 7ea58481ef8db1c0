"""The Flask app factory: settings, database, Celery, metrics, errors, blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response, jsonify
from flask.sessions import SessionInterface, SessionMixin

from .celery_app import EmbeddedWorker, make_celery
from .errors import register_error_handlers
from .kernel import ids
from .kernel.db import make_engine
from .kernel.logging import configure_logging, get_logger
from .kernel.routing import RoutingMap
from .limits import install_limits
from .metrics import Metrics
from .openapi import build_openapi
from .settings import Settings
from .units import sql_uow_factory

log = get_logger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    start_background: bool = True,
    migrate: bool = True,
) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    lease = _lease_worker_id(settings)
    ids.configure(lease.worker_id if lease is not None else settings.worker_id)

    app = App("ridehail")
    app.session_interface = NoCookieSession()
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["settings"] = settings

    engine = make_engine(settings.database_url)
    if migrate:
        from .migrate import upgrade

        upgrade(settings.database_url, engine=engine)
    app.extensions["engine"] = engine
    app.extensions["uow_factory"] = sql_uow_factory(engine)

    from .bootstrap import payment_provider

    provider = payment_provider(settings, app.extensions["uow_factory"])
    app.extensions["payment_provider"] = provider
    celery = make_celery(settings, app.extensions["uow_factory"], provider)
    app.extensions["celery"] = celery

    register_error_handlers(app)
    Metrics().init_app(app)
    _register_core_routes(app)
    _register_blueprints(app)
    install_limits(app, settings)  # after the blueprints: it checks the limits they name

    from .bootstrap import build_engine

    engine_, background, revocations = build_engine(
        settings, app.extensions["uow_factory"], start=start_background, celery=celery)
    app.extensions["dispatch"] = engine_
    # Revoking a token closes its open connections and empties the token caches, in every
    # process (ridehail/edge, accounts/auth.py).
    app.extensions["revocations"] = revocations
    from accounts.auth import install_token_cache

    install_token_cache(app, settings.auth_cache_s)
    if start_background and not settings.scaled and settings.embedded_worker:
        worker = EmbeddedWorker(celery, concurrency=settings.embedded_worker_concurrency)
        worker.start()
        background.append(worker)
    mirror = app.extensions["metrics"].mirror  # several processes: see ridehail/metrics.py
    if start_background and mirror is not None:
        background.append(mirror.start())
    if lease is not None:
        background.insert(0, lease.start())  # stopped last: ids stay unique to the end
    app.extensions["background"] = background
    log.info("app created", mode="scaled" if settings.scaled else "embedded",
             database=_redact(settings.database_url))
    return app


def _lease_worker_id(settings: Settings) -> Any:
    """Scaled mode: each API process needs its own id-generator worker id (ridehail/ids.py)."""
    if not settings.scaled or settings.worker_id is not None:
        return None
    from dispatch.feed import redis_client

    from .worker_ids import WorkerIdLease

    assert settings.redis_url is not None
    return WorkerIdLease(redis_client(settings.redis_url))


def shutdown(app: Flask) -> None:
    """Stop background threads and dispose of connections (tests and the CLI call this)."""
    for part in reversed(app.extensions.get("background", [])):
        part.stop()
    app.extensions["background"] = []
    app.extensions["engine"].dispose()


def _register_blueprints(app: Flask) -> None:
    """One blueprint per area; each domain package's api.py translates HTTP into services."""
    from .kernel.routing import IdConverter

    # Before any rule is added: every `<id:...>` segment is checked by the one id rule.
    app.url_map.converters["id"] = IdConverter
    from accounts.api import bp as accounts_bp
    from dispatch.api import bp as rides_bp
    from dispatch.debugmap import bp as debugmap_bp

    app.register_blueprint(accounts_bp)  # sign-up, sessions, /v1/me
    app.register_blueprint(rides_bp)  # drivers, locations, nearby, trips, offers, lifecycle
    from trips.api import bp as billing_bp

    app.register_blueprint(billing_bp)  # payment methods, receipts, earnings, ratings
    app.register_blueprint(debugmap_bp)  # /debug/map and its GeoJSON (issue 7)
    from .webapps import bp as webapps_bp

    app.register_blueprint(webapps_bp)  # /app/rider and /app/driver, on the public API (issue 15)


def _register_core_routes(app: Flask) -> None:
    from .kernel.validation import doc

    @app.get("/health")
    @doc("Liveness", auth=False, tags=["ops"])
    def health() -> Response:
        return jsonify(status="ok")

    @app.get("/openapi.json")
    @doc("This OpenAPI 3.1 document", auth=False, tags=["ops"])
    def openapi() -> Response:
        if "openapi_doc" not in app.extensions:
            app.extensions["openapi_doc"] = build_openapi(app)
        return jsonify(app.extensions["openapi_doc"])


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class App(Flask):
    """Flask, with the URL map that matches each hot path once (kernel/routing.py)."""

    url_map_class = RoutingMap


class NoCookieSession(SessionInterface):
    """Every caller authenticates with a bearer token, so Flask's signed cookie session is never
    used; opening it anyway built a signing serializer on each request (py-spy: 8% of a
    location post's time). Writing to `flask.session` raises, as with no secret key."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None
