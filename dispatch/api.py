"""The ride-flow blueprint: driver status and locations, nearby vehicles, trips, offers and the
lifecycle. Thin: validate, call the engine, serialise; domain errors become problems here."""

from __future__ import annotations

import contextlib
import queue
from datetime import UTC, datetime
from typing import Any

import geojson
from flask import Blueprint, Response, current_app, jsonify

from accounts import service as accounts_service
from accounts.auth import current_principal, require
from accounts.model import Role
from ridehail.kernel.errors import Problem
from ridehail.kernel.validation import body, doc, query
from trips.model import Trip, TripError, TripNotFound
from trips.money import format_minor

from .engine import Engine
from .model import DispatchError, Offer, OfferNotFound, OutsideServiceArea, RiderBusy
from .schemas import (
    BatchIn,
    BatchOut,
    CancelIn,
    LocationIn,
    NearbyQuery,
    OfferOut,
    OffersQuery,
    StatusIn,
    TripIn,
    TripOut,
)

bp = Blueprint("rides", __name__)


def engine() -> Engine:
    eng: Engine = current_app.extensions["dispatch"]
    return eng


@bp.errorhandler(TripError)
@bp.errorhandler(DispatchError)
@bp.errorhandler(RiderBusy)
@bp.errorhandler(OutsideServiceArea)
def _domain_error(exc: Exception) -> Response:
    from ridehail.kernel.errors import problem_response

    if isinstance(exc, TripNotFound | OfferNotFound):
        what = "trip" if isinstance(exc, TripNotFound) else "offer"
        return problem_response(Problem(404, "Not Found", f"no such {what} {exc}"))
    if isinstance(exc, OutsideServiceArea):
        return problem_response(Problem(422, "Unprocessable Content", str(exc),
                                        errors=[{"field": exc.field, "message": str(exc)}]))
    # Everything else (illegal transitions, closed offers, busy riders or drivers, a driver
    # offline) is a conflict with the current state.
    return problem_response(Problem(409, "Conflict", str(exc)))


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def money(amount: int | None, currency: str) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"amount": amount, "currency": currency, "display": format_minor(amount)}


def trip_view(trip: Trip, with_driver_location: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": trip.id, "state": trip.state.value, "rider_id": trip.rider_id,
        "driver_id": trip.driver_id, "vehicle_class": trip.vehicle_class,
        "pickup": {"lat": trip.pickup_lat, "lng": trip.pickup_lng},
        "dropoff": {"lat": trip.dropoff_lat, "lng": trip.dropoff_lng},
        "requested_at": iso(trip.requested_at), "assigned_at": iso(trip.assigned_at),
        "arrived_at": iso(trip.arrived_at), "started_at": iso(trip.started_at),
        "completed_at": iso(trip.completed_at), "cancelled_at": iso(trip.cancelled_at),
        "cancelled_by": trip.cancelled_by, "surge_multiplier": trip.surge,
        "fare_estimate": money(trip.fare_estimate, trip.currency),
        "fare": money(trip.fare_final, trip.currency),
        "distance_m": trip.distance_m, "duration_s": trip.duration_s,
        "payment_state": trip.payment_state,
    }
    if with_driver_location and trip.driver_id is not None:
        pos = engine().index.snapshot().get(trip.driver_id)
        if pos is not None:
            out["driver_location"] = {"lat": pos.lat, "lng": pos.lng}
    return out


def offer_view(offer: Offer, trip: Trip | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": offer.id, "trip_id": offer.trip_id, "state": offer.state.value,
        "created_at": iso(offer.created_at), "deadline": iso(offer.deadline),
        "rank": offer.rank, "distance_m": offer.distance_m, "eta_s": offer.eta_s,
    }
    if trip is not None:
        out["pickup"] = {"lat": trip.pickup_lat, "lng": trip.pickup_lng}
        out["dropoff"] = {"lat": trip.dropoff_lat, "lng": trip.dropoff_lng}
        out["fare_estimate"] = money(trip.fare_estimate, trip.currency)
    return out


def offers_payload(driver_id: str) -> list[dict[str, Any]]:
    eng = engine()
    return [offer_view(o, eng.get_trip(o.trip_id)) for o in eng.pending_offers(driver_id)]


def _epoch(ts: datetime | None) -> float | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "ts: needs a time zone (e.g. Z)",
                      errors=[{"field": "ts", "message": "needs a time zone"}])
    value = ts.timestamp()
    if value > engine().clock.now() + 60:
        raise Problem(422, "Unprocessable Content", "ts: more than 60 s in the future",
                      errors=[{"field": "ts", "message": "in the future"}])
    return value


# --- drivers -------------------------------------------------------------------------------

@bp.put("/v1/drivers/me/status")
@require(Role.driver)
@body(StatusIn)
@doc("Go online or offline", responses={200: "the driver's dispatch state"}, tags=["drivers"])
def put_status(body: StatusIn) -> Response:
    me = current_principal().account_id
    eng = engine()
    if body.status == "online":
        account = accounts_service.profile(current_app.extensions["uow_factory"], me)
        vclass = account.vehicle.vehicle_class if account.vehicle else "standard"
        st = eng.go_online(me, str(vclass))
    else:
        st = eng.go_offline(me)
    return jsonify(status=st.status.value, online=st.online, vehicle_class=st.vehicle_class)


@bp.post("/v1/drivers/me/location")
@require(Role.driver)
@body(LocationIn)
@doc("Report the driver's location", responses={204: "stored"}, tags=["drivers"])
def post_location(body: LocationIn) -> Response:
    engine().update_location(current_principal().account_id, body.lat, body.lng,
                             _epoch(body.ts))
    return Response(status=204)


@bp.post("/v1/locations")
@require(Role.service)
@body(BatchIn)
@doc("A fleet gateway's batch of locations", responses={202: BatchOut}, tags=["drivers"])
def post_locations(body: BatchIn) -> Response:
    rows = [(u.driver_id, u.lat, u.lng, _epoch(u.ts)) for u in body.updates]
    accepted, rejected = engine().update_locations(rows)
    resp = jsonify(accepted=accepted, rejected=rejected)
    resp.status_code = 202
    return resp


@bp.get("/v1/drivers/me/offers")
@require(Role.driver)
@query(OffersQuery)
@doc("Long-poll for pending offers", responses={200: "a list of offers"}, tags=["offers"])
def get_offers(query: OffersQuery) -> Response:
    me = current_principal().account_id
    eng = engine()
    # Subscribe before reading, so an offer made in between wakes us instead of being missed.
    sub = eng.channel.subscribe(me)
    try:
        offers = offers_payload(me)
        if not offers and query.wait > 0:
            with contextlib.suppress(queue.Empty):
                sub.get(timeout=query.wait)
            offers = offers_payload(me)
    finally:
        eng.channel.unsubscribe(me, sub)
    return jsonify(offers)


@bp.post("/v1/offers/<offer_id>/accept")
@require(Role.driver)
@doc("Accept an offer", responses={200: TripOut}, tags=["offers"])
def accept(offer_id: str) -> Response:
    _check_id(offer_id, "offer")
    trip = engine().accept_offer(offer_id, current_principal().account_id)
    return jsonify(trip_view(trip))


@bp.post("/v1/offers/<offer_id>/reject")
@require(Role.driver)
@doc("Reject an offer", responses={200: OfferOut}, tags=["offers"])
def reject(offer_id: str) -> Response:
    _check_id(offer_id, "offer")
    offer = engine().reject_offer(offer_id, current_principal().account_id)
    return jsonify(offer_view(offer))


# --- riders --------------------------------------------------------------------------------

@bp.get("/v1/vehicles/nearby")
@require(Role.rider)
@query(NearbyQuery)
@doc("Available vehicles near a point (GeoJSON)", responses={200: "FeatureCollection"},
     tags=["riders"])
def nearby(query: NearbyQuery) -> Response:
    found = engine().nearby(query.lat, query.lng, query.radius_m, query.limit,
                            query.vehicle_class)
    features = [
        geojson.Feature(
            id=n.driver_id, geometry=geojson.Point((n.lng, n.lat)),
            properties={"vehicle_id": n.driver_id, "vehicle_class": n.vehicle_class,
                        "distance_m": round(n.distance_m, 1), "eta_s": round(eta, 1)},
        )
        for n, eta in found
    ]
    return Response(geojson.dumps(geojson.FeatureCollection(features)),
                    mimetype="application/geo+json")


@bp.post("/v1/trips")
@require(Role.rider)
@body(TripIn)
@doc("Request a trip", responses={201: TripOut}, tags=["trips"])
def request_trip(body: TripIn) -> Response:
    from trips.api import require_payment_standing

    require_payment_standing(current_principal().account_id)  # 402 after a failed charge
    trip = engine().request_trip(current_principal().account_id,
                                 (body.pickup.lat, body.pickup.lng),
                                 (body.dropoff.lat, body.dropoff.lng), body.vehicle_class)
    resp = jsonify(trip_view(trip))
    resp.status_code = 201
    resp.headers["Location"] = f"/v1/trips/{trip.id}"
    return resp


def _check_id(value: str, what: str) -> None:
    # Ids are BIGINTs: anything else (or larger) cannot exist, and must not reach the driver.
    if not value.isascii() or not value.isdigit() or len(value) > 19 or int(value) >= 2**63:
        raise Problem(404, "Not Found", f"no such {what} {value!r}")


def _visible_trip(trip_id: str) -> Trip:
    """The trip, if the caller may see it: its rider, its driver, or a driver it was offered
    to. Anyone else gets 404, as if it did not exist."""
    _check_id(trip_id, "trip")
    me = current_principal()
    eng = engine()
    trip = eng.get_trip(trip_id)
    if me.role == Role.rider and trip.rider_id == me.account_id:
        return trip
    if me.role == Role.driver:
        if trip.driver_id == me.account_id:
            return trip
        with current_app.extensions["uow_factory"](readonly=True) as uow:
            if any(o.driver_id == me.account_id for o in uow.offers.for_trip(trip_id)):
                return trip
    raise TripNotFound(trip_id)


@bp.get("/v1/trips/<trip_id>")
@require(Role.rider, Role.driver)
@doc("A trip (its rider, its driver, or a driver it was offered to)",
     responses={200: TripOut}, tags=["trips"])
def get_trip(trip_id: str) -> Response:
    return jsonify(trip_view(_visible_trip(trip_id), with_driver_location=True))


@bp.post("/v1/trips/<trip_id>/cancel")
@require(Role.rider, Role.driver)
@doc("Cancel: the rider before the trip starts; the driver before pickup (re-matched)",
     responses={200: TripOut}, tags=["trips"])
def cancel(trip_id: str) -> Response:
    _check_id(trip_id, "trip")
    from flask import request

    from ridehail.kernel.validation import parse_body

    reason = parse_body(CancelIn).reason if request.data else None
    me = current_principal()
    trip = engine().cancel(trip_id, me.role.value, me.account_id, reason)
    return jsonify(trip_view(trip))


def _driver_step(trip_id: str, step: str) -> Response:
    _check_id(trip_id, "trip")
    me = current_principal().account_id
    trip = getattr(engine(), step)(trip_id, me)
    return jsonify(trip_view(trip))


@bp.post("/v1/trips/<trip_id>/arrive")
@require(Role.driver)
@doc("The driver is at the pickup", responses={200: TripOut}, tags=["trips"])
def arrive(trip_id: str) -> Response:
    return _driver_step(trip_id, "arrive")


@bp.post("/v1/trips/<trip_id>/start")
@require(Role.driver)
@doc("The rider is on board", responses={200: TripOut}, tags=["trips"])
def start(trip_id: str) -> Response:
    return _driver_step(trip_id, "start")


@bp.post("/v1/trips/<trip_id>/complete")
@require(Role.driver)
@doc("The trip is over: the fare is computed and the payment enqueued",
     responses={200: TripOut}, tags=["trips"])
def complete(trip_id: str) -> Response:
    return _driver_step(trip_id, "complete")
