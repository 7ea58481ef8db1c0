"""Settings from RIDEHAIL_* environment variables, validated once at start-up.

A bad value stops start-up with a `SettingsError` that names the variable, so a typo in a
deployment fails loudly instead of running with a default the operator did not choose.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVICE_AREA = Path(__file__).resolve().parent / "data" / "nyc_boroughs.geojson"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"  # the sample data that ships in the repository
STRAIGHT_LINE = "straight-line"  # RIDEHAIL_ETA_MODEL's value for no learned model
# RIDEHAIL_* variables read outside `Settings` (the tests' switches): not typos.
OTHER_ENV = frozenset({"RIDEHAIL_REFRESH_SCREENSHOTS"})


class SettingsError(ValueError):
    """A RIDEHAIL_* variable has a value we cannot run with."""


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'ridehail.db'}"
    redis_url: str | None = None
    secret_key: str = "dev-insecure-secret"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 32  # per process: the Flask app's and the connection edge's thread pools
    # The connection edge (ridehail/edge): driver WebSockets, long-polls, rider event streams.
    conn_max_frame_bytes: int = 64 * 1024  # a bigger frame closes the socket (1009)
    conn_max_per_account: int = 3  # per kind; one more closes the oldest (4029)
    conn_idle_s: float = 60.0  # a WebSocket without a frame from the client this long: 4008
    conn_ping_interval_s: float = 20.0  # protocol pings; no pong within as long closes it
    conn_frames_per_s: float = 10.0  # per WebSocket, with a burst of twice as many
    conn_max_connections: int = 50_000  # per process: more are refused (503, or 1013)
    stream_location_interval_s: float = 2.0  # the driver's position in a rider's stream
    stream_heartbeat_s: float = 15.0  # a comment line keeps proxies from closing a stream
    worker_id: int | None = None
    log_level: str = "INFO"
    log_format: str = "console"
    var_dir: Path = PROJECT_ROOT / "var"
    service_area: Path = DEFAULT_SERVICE_AREA
    # Travel times (pickup ETAs, the quote's duration and distance): a model file from
    # `ridehail eta fit`, or "straight-line"; unset, the shipped NYC model for the default
    # (NYC) service area and the straight line for any other (`eta_model_path`).
    eta_model: str | None = None
    # The live correction of travel times by completed rides (dispatch/live_eta.py; in the
    # scaled mode every process's): its half-life in seconds; 0 turns it off.
    eta_live_half_life_s: float = 8 * 3600.0
    # An OpenStreetMap extract of the service area: pickup ETAs and the upfront fare's duration
    # and distance follow its roads (roads/), the travel-time model off them. Also the default
    # of `ridehail simulate --roads`.
    roads: Path | None = None
    # The simulator's and the benchmarks' data folder (simulator.city.data_dir reads the same
    # variable: the simulator may not import the wiring). Not needed by the API.
    data_dir: Path = DEFAULT_DATA_DIR
    max_body_bytes: int = 2 * 1024 * 1024
    index_backend: str = "quadtree"
    index_resolution: int | None = None  # None: the backend's default (quadtree 17, h3 9)
    location_ttl_s: float = 30.0
    publish_interval_s: float = 0.05
    offer_timeout_s: float = 15.0
    dispatch_radius_m: float = 5000.0
    dispatch_max_candidates: int = 10
    dispatch_policy: str = "greedy"
    batch_window_s: float = 2.0
    batch_hold_s: float = 0.0
    batch_eta_cap_s: float = 0.0
    batch_eta_cap_growth: float = 1.0
    batch_forward_s: float = 0.0
    embedded_worker: bool = True
    task_visibility_timeout_s: float = 60.0
    queue: str = "ridehail"
    debug_public: bool | None = None
    # /metrics: open to anyone in the embedded mode; in the scaled mode only to these networks
    # (comma-separated CIDRs) or to a request with an admin or service token.
    metrics_public: bool | None = None
    metrics_networks: str = "127.0.0.0/8,::1/128"
    # `ridehail worker`'s own metrics (payments, its process), on RIDEHAIL_HOST; 0: none.
    worker_metrics_port: int = 0
    debug_tile_url: str = ""  # e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; empty: offline
    demo_drivers: int = 200
    # The demo fleet's time-lapse: simulated seconds per wall second, so that rides are seen
    # requested, matched and completed within the first minute (1: real time).
    demo_speed: float = 6.0
    auth_cache_s: float = 2.0  # a token revoked by another process works for at most this long
    # Rate limits (issue 13, items 4 and 5), Flask-Limiter in ridehail/limits.py: memory in
    # the embedded mode, Redis in the scaled mode. Each is one or more "N/period" joined by
    # ";" ("10/minute;100/hour"), all of which must hold. Log-in and sign-up count per email
    # tried (stops guessing one account's password from many IPs) and per client IP (stops
    # one IP trying many accounts); requests without credentials count per IP in general.
    rate_limit_enabled: bool = True
    rate_limit_log_in_account: str = "10/minute;100/hour"
    rate_limit_log_in_ip: str = "30/minute;300/hour"
    rate_limit_sign_up_account: str = "10/hour"
    rate_limit_sign_up_ip: str = "10/minute;50/hour"
    rate_limit_trip_request: str = "5/minute;30/hour"  # per rider
    rate_limit_quote: str = "60/minute;600/hour"  # per rider: POST /v1/quotes
    rate_limit_driver_location: str = "120/minute"  # per driver: 2 a second on average
    rate_limit_connection_open: str = "60/minute;600/hour"  # per account: edge openings
    # Per client IP: tokens refused (unknown, revoked, expired). Past it, the address's tokens
    # are refused (429) before they are looked up: no database read per guess.
    rate_limit_auth_failed_ip: str = "30/minute;300/hour"
    rate_limit_location_batch: str = "600/minute"  # per service account (fleet gateway)
    rate_limit_anonymous_ip: str = "300/minute"  # public endpoints, per IP (not /health)
    # Payments: the platform's commission in basis points (2500 = 25 %), the provider, the
    # token charged for riders with no method of their own ("auto": the sandbox's tok_ok in
    # the embedded mode, none in the scaled mode; "none": never), the retry policy for
    # transient provider errors, and when a pending payment counts as stuck.
    commission_bps: int = 2500
    payment_provider: str = "sandbox"
    default_payment_token: str = "auto"
    payment_retry_base_s: float = 2.0
    payment_max_retries: int = 5
    payment_stuck_after_s: float = 60.0
    payment_sweep_interval_s: float = 30.0
    sandbox_slow_s: float = 30.0
    # The sandbox's test hooks (tok_slow stalls a capture for sandbox_slow_s): tests only. Off,
    # the provider refuses tok_slow, so no client can stall a worker through the API.
    sandbox_test_hooks: bool = False
    embedded_worker_concurrency: int = 4
    # Sessions and nearby privacy (issue 13, items 7 and 10). A bearer token expires after
    # token_idle_expiry_s without use (each use slides it; the last-used time is written at
    # most once per token_touch_interval_s) and token_max_age_s after it was issued, however
    # busy. Nearby shows per-rider vehicle ids that change every nearby_id_rotate_s, within
    # at most nearby_max_radius_m.
    token_idle_expiry_s: float = 30 * 86400.0
    token_max_age_s: float = 90 * 86400.0
    token_touch_interval_s: float = 60.0
    nearby_id_rotate_s: float = 600.0
    nearby_max_radius_m: float = 3000.0
    # The meter and fees (issue 13, items 3 and 15). A trace segment faster than
    # meter_max_speed_mps carries no distance. The rider pays the upfront quote unless the
    # metered fare exceeds it by more than fare_tolerance AND the metered distance or duration
    # exceeds the quote's by more than fare_route_margin (then the metered fare, capped at
    # quote x (1 + fare_cap)), or the ride ended more than fare_route_margin short (then the
    # metered fare): trips/pricing.py. A rider who cancels more than cancel_fee_after_s after
    # assignment, or whom the driver waited for no_show_wait_s at the pickup (the driver's
    # no-show), pays cancel_fee (minor units) to the driver. pickup_pin: the rider gets a
    # 4-digit PIN the driver enters at start, with pickup_pin_attempts wrong tries at most.
    meter_max_speed_mps: float = 40.0
    fare_tolerance: float = 0.10
    fare_route_margin: float = 0.25
    fare_cap: float = 0.50
    cancel_fee_after_s: float = 120.0
    cancel_fee: int = 500
    no_show_wait_s: float = 300.0
    pickup_pin: bool = False
    pickup_pin_attempts: int = 5

    @property
    def scaled(self) -> bool:
        """Scaled mode: Redis for the location stream, hot state and the Celery broker."""
        return self.redis_url is not None

    def eta_model_path(self) -> Path | None:
        """The ETA model file the API loads; None: the straight line."""
        if self.eta_model == STRAIGHT_LINE:
            return None
        if self.eta_model:
            return Path(self.eta_model)
        if Path(self.service_area).resolve() == DEFAULT_SERVICE_AREA:
            from dispatch.learned_eta import SHIPPED

            return SHIPPED["nyc"]
        return None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        # A persistent local transport: queued tasks survive a restart of the process. Its
        # messages are written atomically (ridehail/broker.py).
        return "ridehail-filesystem://"

    @property
    def fallback_payment_token(self) -> str | None:
        if self.default_payment_token == "auto":
            return None if self.scaled else "tok_ok"
        return None if self.default_payment_token == "none" else self.default_payment_token

    @property
    def metrics_open(self) -> bool:
        return (not self.scaled) if self.metrics_public is None else self.metrics_public

    @property
    def metrics_allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n.strip(), strict=False)
                for n in self.metrics_networks.split(",") if n.strip()]

    @property
    def debug_map_public(self) -> bool:
        """By default the map is public only in the embedded mode AND when the API listens on
        loopback: bound to another address, it would show every trip and driver to anyone
        who can reach it. RIDEHAIL_DEBUG_PUBLIC says otherwise explicitly."""
        if self.debug_public is not None:
            return self.debug_public
        return not self.scaled and _is_loopback(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            key = "RIDEHAIL_" + f.name.upper()
            if key in env and env[key] != "":
                values[f.name] = _parse(key, env[key], f.type)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        try:
            url = make_url(self.database_url)
        except (ArgumentError, ValueError) as exc:
            raise SettingsError(
                f"RIDEHAIL_DATABASE_URL: not a database URL ({self.database_url!r}): {exc}"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise SettingsError(
                f"RIDEHAIL_DATABASE_URL: unsupported database {url.get_backend_name()!r}; "
                "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )
        if self.redis_url is not None:
            parsed = urlparse(self.redis_url)
            if parsed.scheme not in ("redis", "rediss", "unix") or not (
                parsed.hostname or parsed.path
            ):
                raise SettingsError(
                    f"RIDEHAIL_REDIS_URL: not a Redis URL ({self.redis_url!r}); "
                    "expected redis://HOST:PORT/DB"
                )
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"RIDEHAIL_PORT: {self.port} is not a TCP port")
        if self.workers < 1:
            raise SettingsError("RIDEHAIL_WORKERS: must be at least 1")
        if self.workers > 1 and not self.scaled:
            raise SettingsError(
                "RIDEHAIL_WORKERS: several API processes need RIDEHAIL_REDIS_URL "
                "(the embedded index lives in one process)"
            )
        if self.threads < 1:
            raise SettingsError("RIDEHAIL_THREADS: must be at least 1")
        if not 256 <= self.conn_max_frame_bytes <= 16 * 1024 * 1024:
            raise SettingsError("RIDEHAIL_CONN_MAX_FRAME_BYTES: must be in [256, 16777216]")
        if self.conn_max_per_account < 1 or self.conn_max_connections < 1:
            raise SettingsError("RIDEHAIL_CONN_MAX_PER_ACCOUNT and RIDEHAIL_CONN_MAX_CONNECTIONS:"
                                " must be at least 1")
        try:
            self.metrics_allowed_networks  # noqa: B018 - parsed for its errors
        except ValueError as exc:
            raise SettingsError(f"RIDEHAIL_METRICS_NETWORKS: {exc}") from None
        if not 0 <= self.worker_metrics_port <= 65535:
            raise SettingsError("RIDEHAIL_WORKER_METRICS_PORT: must be a TCP port, or 0 (off)")
        if not 0 < self.demo_speed <= 60:
            raise SettingsError("RIDEHAIL_DEMO_SPEED: must be in (0, 60]")
        if not 1 <= self.embedded_worker_concurrency <= 64:
            raise SettingsError("RIDEHAIL_EMBEDDED_WORKER_CONCURRENCY: must be in [1, 64]")
        if self.worker_id is not None and not 0 <= self.worker_id < 1024:
            raise SettingsError("RIDEHAIL_WORKER_ID: must be in [0, 1023]")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"RIDEHAIL_LOG_LEVEL: unknown level {self.log_level!r}")
        if self.log_format not in ("console", "json"):
            raise SettingsError("RIDEHAIL_LOG_FORMAT: must be 'console' or 'json'")
        if not Path(self.service_area).is_file():
            raise SettingsError(f"RIDEHAIL_SERVICE_AREA: no such file {self.service_area}")
        if self.roads is not None and not Path(self.roads).is_file():
            raise SettingsError(f"RIDEHAIL_ROADS: no such file {self.roads}")
        # The default may be absent (an installed package has no data/); a folder the
        # operator named must exist.
        if Path(self.data_dir) != DEFAULT_DATA_DIR and not Path(self.data_dir).is_dir():
            raise SettingsError(f"RIDEHAIL_DATA_DIR: no such folder {self.data_dir}")
        if self.eta_model and self.eta_model != STRAIGHT_LINE:
            from dispatch.learned_eta import ModelFileError, read_meta

            try:  # the header only: format, version, time zone
                read_meta(self.eta_model)
            except ModelFileError as exc:
                raise SettingsError(f"RIDEHAIL_ETA_MODEL: {exc} (or '{STRAIGHT_LINE}')"
                                    ) from None
        if not 0 <= self.eta_live_half_life_s <= 30 * 86400:
            raise SettingsError("RIDEHAIL_ETA_LIVE_HALF_LIFE_S: must be in [0, 2592000] seconds"
                                " (0: no live correction)")
        if self.index_backend not in ("h3", "quadtree"):
            raise SettingsError("RIDEHAIL_INDEX_BACKEND: must be 'h3' or 'quadtree'")
        top = 15 if self.index_backend == "h3" else 26
        if self.index_resolution is not None and not 0 <= self.index_resolution <= top:
            raise SettingsError(f"RIDEHAIL_INDEX_RESOLUTION: must be in [0, {top}] for "
                                f"the {self.index_backend} backend")
        if self.dispatch_policy not in ("greedy", "batched"):
            raise SettingsError("RIDEHAIL_DISPATCH_POLICY: must be 'greedy' or 'batched'")
        for name in ("location_ttl_s", "publish_interval_s", "offer_timeout_s",
                     "dispatch_radius_m", "batch_window_s", "task_visibility_timeout_s",
                     "conn_idle_s", "conn_ping_interval_s", "conn_frames_per_s",
                     "stream_location_interval_s", "stream_heartbeat_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(f"RIDEHAIL_{name.upper()}: must be a positive number")
        # The batched policy's settings against long pickups (dispatch/batching.py); 0: off.
        for name in ("batch_hold_s", "batch_eta_cap_s", "batch_eta_cap_growth",
                     "batch_forward_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SettingsError(f"RIDEHAIL_{name.upper()}: must be a number >= 0")
        if not 0 <= self.commission_bps <= 10_000:
            raise SettingsError("RIDEHAIL_COMMISSION_BPS: must be in [0, 10000]")
        if self.payment_provider != "sandbox":
            raise SettingsError("RIDEHAIL_PAYMENT_PROVIDER: only 'sandbox' is built in")
        if self.default_payment_token not in ("auto", "none") and not re.fullmatch(
                r"tok_[a-z0-9_]{2,60}", self.default_payment_token):
            raise SettingsError("RIDEHAIL_DEFAULT_PAYMENT_TOKEN: 'auto', 'none' or a token "
                                "like tok_ok")
        if self.payment_max_retries < 0:
            raise SettingsError("RIDEHAIL_PAYMENT_MAX_RETRIES: must be >= 0")
        for name in ("payment_retry_base_s", "payment_stuck_after_s",
                     "payment_sweep_interval_s", "sandbox_slow_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(f"RIDEHAIL_{name.upper()}: must be a positive number")
        if not (math.isfinite(self.auth_cache_s) and self.auth_cache_s >= 0):
            raise SettingsError("RIDEHAIL_AUTH_CACHE_S: must be a number >= 0")
        for name in ("token_idle_expiry_s", "token_max_age_s", "token_touch_interval_s",
                     "nearby_id_rotate_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(f"RIDEHAIL_{name.upper()}: must be a positive number")
        if self.token_touch_interval_s >= self.token_idle_expiry_s:
            raise SettingsError("RIDEHAIL_TOKEN_TOUCH_INTERVAL_S: must be less than "
                                "RIDEHAIL_TOKEN_IDLE_EXPIRY_S (a token in use would expire)")
        # The request schema's ceiling (dispatch.schemas.NearbyQuery) is the hard limit.
        if not (math.isfinite(self.nearby_max_radius_m) and 0 < self.nearby_max_radius_m
                <= 50_000):
            raise SettingsError("RIDEHAIL_NEARBY_MAX_RADIUS_M: must be in (0, 50000]")
        # The meter and fees (items 3 and 15).
        if not (math.isfinite(self.meter_max_speed_mps) and 5 <= self.meter_max_speed_mps
                <= 100):
            raise SettingsError("RIDEHAIL_METER_MAX_SPEED_MPS: must be in [5, 100] (m/s)")
        for name in ("fare_tolerance", "fare_cap"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise SettingsError(f"RIDEHAIL_{name.upper()}: must be a number >= 0")
        if not (math.isfinite(self.fare_route_margin) and 0 <= self.fare_route_margin < 1):
            raise SettingsError("RIDEHAIL_FARE_ROUTE_MARGIN: must be in [0, 1)")
        for name in ("cancel_fee_after_s", "no_show_wait_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise SettingsError(f"RIDEHAIL_{name.upper()}: must be a number >= 0")
        if not 0 <= self.cancel_fee <= 100_000:
            raise SettingsError("RIDEHAIL_CANCEL_FEE: must be in [0, 100000] (minor units)")
        if not 1 <= self.pickup_pin_attempts <= 100:
            raise SettingsError("RIDEHAIL_PICKUP_PIN_ATTEMPTS: must be in [1, 100]")
        if self.max_body_bytes < 1024:
            raise SettingsError("RIDEHAIL_MAX_BODY_BYTES: must be at least 1024")
        if self.debug_tile_url and not (
            self.debug_tile_url.startswith(("http://", "https://", "/"))
            and "{z}" in self.debug_tile_url
        ):
            raise SettingsError(
                "RIDEHAIL_DEBUG_TILE_URL: expected a tile URL template such as "
                "https://tile.example.org/{z}/{x}/{y}.png"
            )
        if self.dispatch_max_candidates < 1:
            raise SettingsError("RIDEHAIL_DISPATCH_MAX_CANDIDATES: must be at least 1")
        for name in RATE_LIMITS:
            _check_rate_limit(f"RIDEHAIL_{name.upper()}", getattr(self, name))


RATE_LIMITS = ("rate_limit_log_in_account", "rate_limit_log_in_ip", "rate_limit_sign_up_account",
               "rate_limit_sign_up_ip", "rate_limit_trip_request", "rate_limit_quote",
               "rate_limit_driver_location", "rate_limit_location_batch",
               "rate_limit_connection_open", "rate_limit_auth_failed_ip",
               "rate_limit_anonymous_ip")


def _check_rate_limit(key: str, value: str) -> None:
    """A rate limit string Flask-Limiter can read, each part a positive count per period."""
    from limits import parse_many

    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise SettingsError(f"{key}: not a rate limit ({value!r}); expected one or more "
                            "'N/period' joined by ';', e.g. '10/minute;100/hour'")


def env_names() -> frozenset[str]:
    """Every RIDEHAIL_* variable the project reads."""
    return frozenset("RIDEHAIL_" + f.name.upper() for f in fields(Settings)) | OTHER_ENV


def unknown_env_warnings(env: Mapping[str, str] | None = None) -> list[str]:
    """One line per RIDEHAIL_* variable nothing reads, naming the closest known one: a typo
    (RIDEHAIL_PROT) would otherwise be silently ignored."""
    env = os.environ if env is None else env
    known = env_names()
    # Compared without the prefix, which every name shares and would make anything look close.
    suffixes = sorted(name.removeprefix("RIDEHAIL_") for name in known)
    lines = []
    for key in sorted(k for k in env if k.startswith("RIDEHAIL_") and k not in known):
        close = difflib.get_close_matches(key.removeprefix("RIDEHAIL_"), suffixes, n=1, cutoff=0.6)
        hint = (f"; did you mean RIDEHAIL_{close[0]}?" if close
                else " (see the README's configuration table)")
        lines.append(f"{key} is not a ridehail setting and is ignored{hint}")
    return lines


def _parse(key: str, raw: str, type_name: object) -> object:
    t = str(type_name)
    try:
        if t.startswith("bool"):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            value = float(raw)
            return value
        if t.startswith("Path"):
            return Path(raw)
    except ValueError as exc:
        raise SettingsError(f"{key}: cannot read {raw!r}: {exc}") from None
    return raw


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name we cannot judge here: not public
