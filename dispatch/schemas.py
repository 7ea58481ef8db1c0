"""Request and response bodies of the ride-flow API (pydantic; also the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, RootModel, WithJsonSchema

from ridehail.kernel.routing import MAX_DIGITS, is_id
from ridehail.kernel.validation import Body, Query

Lat = Annotated[float, Field(ge=-90, le=90)]
Lng = Annotated[float, Field(ge=-180, le=180)]
VehicleClassName = Literal["standard", "xl", "premium"]


def _an_id(value: str) -> str:
    # The same rule as the `<id:...>` URL converter: a larger number cannot exist, and the
    # database driver would fail on it (a 500) instead of finding nothing.
    if not is_id(value):
        raise ValueError(f"no such id (expected 1 to {MAX_DIGITS} digits, below 2**63)")
    return value


DriverId = Annotated[str, AfterValidator(_an_id),
                     WithJsonSchema({"type": "string", "pattern": f"^[0-9]{{1,{MAX_DIGITS}}}$"})]


class LatLng(Body):
    lat: Lat
    lng: Lng


class StatusIn(Body):
    status: Literal["online", "offline"]


class LocationIn(Body):
    lat: Lat
    lng: Lng
    heading: Annotated[float, Field(ge=0, le=360)] | None = None
    speed_mps: Annotated[float, Field(ge=0, le=100)] | None = None
    # ISO 8601 with a zone (strict mode would refuse the text form a JSON body carries).
    ts: Annotated[datetime, Field(strict=False)] | None = None


class BatchUpdate(LocationIn):
    """A row of a fleet gateway's batch: a driver's location, parsed like the driver's own."""

    driver_id: DriverId


class BatchIn(Body):
    updates: Annotated[list[BatchUpdate], Field(min_length=1, max_length=5000)]


class BatchOut(BaseModel):
    accepted: int
    rejected: list[dict[str, object]]


class NearbyQuery(Query):
    lat: Lat
    lng: Lng
    # 50 km is the hard ceiling; the configured cap (RIDEHAIL_NEARBY_MAX_RADIUS_M, 3000 m by
    # default) is applied by the view, and the default radius never exceeds it.
    radius_m: Annotated[float, Field(
        gt=0, le=50_000, description="at most RIDEHAIL_NEARBY_MAX_RADIUS_M (3000 by default)",
    )] = 3000.0
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    vehicle_class: VehicleClassName | None = None


class TripIn(Body):
    pickup: LatLng
    dropoff: LatLng
    vehicle_class: VehicleClassName = "standard"


class CancelIn(Body):
    reason: Annotated[str, Field(max_length=200)] | None = None


class StartIn(Body):
    # The rider's pickup PIN, when the setting turns PINs on (RIDEHAIL_PICKUP_PIN).
    pin: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None


class OffersQuery(Query):
    wait: Annotated[float, Field(ge=0, le=30)] = 0.0


class Money(BaseModel):
    amount: int
    currency: str
    display: str


class QuoteIn(Body):
    pickup: LatLng
    dropoff: LatLng


class QuoteOut(BaseModel):
    """What a request would cost now; the request itself locks its own quote in."""
    fare_estimate: Money
    surge_multiplier: str
    distance_m: float
    duration_s: float


class HistoryQuery(Query):
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class CancellationOut(BaseModel):
    """A rider's cancellation: free until `free_until` (null: no driver yet; the free period
    of `free_for_s` starts at assignment), then `fee`."""
    fee: Money
    free_until: datetime | None
    free_for_s: float


class StatusOut(BaseModel):
    status: Literal["offline", "available", "offered", "en_route", "on_trip"]
    online: bool
    vehicle_class: str


class OfferOut(BaseModel):
    id: str
    trip_id: str
    state: str
    created_at: datetime
    deadline: datetime
    rank: int
    distance_m: float
    eta_s: float
    pickup: dict[str, float] | None = None
    dropoff: dict[str, float] | None = None
    fare_estimate: Money | None = None


class OfferList(RootModel[list[OfferOut]]):
    """The driver's pending offers (an empty list when none came within the wait)."""


class TripOut(BaseModel):
    id: str
    state: str
    rider_id: str
    driver_id: str | None
    vehicle_class: str
    pickup: dict[str, float]
    dropoff: dict[str, float]
    requested_at: datetime
    assigned_at: datetime | None
    arrived_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    surge_multiplier: str
    fare_estimate: Money | None
    fare: Money | None
    # Which written rule set the fare (README "Fares"): quote, metered_longer, metered_capped,
    # metered_shorter, cancel_fee, no_show_fee; None before there is a fare.
    fare_rule: str | None
    distance_m: float | None
    duration_s: float | None
    payment_state: str | None
    driver_location: dict[str, float] | None = None
    # Only the rider's own view, only until the trip starts (trips.access.sees_pickup_pin).
    pickup_pin: str | None = None
    # Only the rider's own view, while the rider may still cancel (trips.fees.rider_cancel_terms).
    cancellation: CancellationOut | None = None
    # Only the trip's driver, with pickup PINs on: the start needs the rider's PIN.
    pickup_pin_required: bool | None = None


class TripList(RootModel[list[TripOut]]):
    """The caller's trips (a rider's, or those a driver was assigned), newest first."""
