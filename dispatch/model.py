"""Dispatch's domain: driver states, offers with deadlines, and the record of every decision.
Plain Python: no Flask, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class DriverStatus(StrEnum):
    offline = "offline"
    available = "available"
    offered = "offered"
    en_route = "en_route"
    on_trip = "on_trip"


class OfferState(StrEnum):
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"
    expired = "expired"
    withdrawn = "withdrawn"


class DispatchError(Exception):
    pass


class OfferNotFound(DispatchError):
    pass


class OfferClosed(DispatchError):
    """The offer is no longer pending (already answered, expired or withdrawn)."""


class DriverBusy(DispatchError):
    pass


class OutsideServiceArea(ValueError):
    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: outside the service area")
        self.field = field


class RiderBusy(Exception):
    """The rider already has an open trip."""


class NotOnline(DispatchError):
    pass


class Claim(NamedTuple):
    """A claim of the first available of several drivers (`claim_first`): the driver claimed
    and their row's new version (None, None when none was), and each candidate before them
    with why not: the status found, "claimed" (available, and a concurrent claim holds or won
    them) or "unknown" (no such row)."""

    driver_id: str | None
    version: int | None
    skipped: list[tuple[str, str]]


class DriverSummary(NamedTuple):
    """A driver's dispatch state without its bookkeeping: what the directory mirrors."""

    driver_id: str
    status: DriverStatus
    vehicle_class: str
    trip_id: str | None
    version: int


@dataclass
class DriverState:
    driver_id: str
    vehicle_class: str
    status: DriverStatus = DriverStatus.offline
    updated_at: float = 0.0
    trip_id: str | None = None
    version: int = 0

    @property
    def online(self) -> bool:
        return self.status != DriverStatus.offline


@dataclass
class Offer:
    id: str
    trip_id: str
    driver_id: str
    created_at: float
    deadline: float
    rank: int
    distance_m: float
    eta_s: float
    state: OfferState = OfferState.pending
    responded_at: float | None = None
    version: int = 0

    def close(self, state: OfferState, now: float) -> None:
        if self.state != OfferState.pending:
            raise OfferClosed(f"offer {self.id} is {self.state.value}")
        self.state = state
        self.responded_at = now


@dataclass
class DispatchRecord:
    """Why a trip got the driver it got: every search, candidate, filter and outcome."""

    trip_id: str
    created_at: float
    events: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None
    version: int = 0

    def log(self, kind: str, at: float, **data: Any) -> None:
        self.events.append(self.entry(kind, at, **data))

    @staticmethod
    def entry(kind: str, at: float, **data: Any) -> dict[str, Any]:
        """One event of the log, as `log` appends it (and `append` of the repository)."""
        return {"kind": kind, "at": at, **data}

    def tried_drivers(self) -> set[str]:
        return {e["driver_id"] for e in self.events if e["kind"] == "offered"}
