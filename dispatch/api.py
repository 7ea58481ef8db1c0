"""The ride-flow blueprint: driver status and locations, nearby vehicles, trips, offers and the
lifecycle. Thin: validate, call the engine, serialise; domain errors become problems here."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request

from accounts import service as accounts_service
from accounts.auth import current_principal, require
from accounts.model import Role
from ridehail.kernel.channel import Waiter
from ridehail.kernel.errors import Problem, problem_response
from ridehail.kernel.formats import money, quantity
from ridehail.kernel.throttle import throttle
from ridehail.kernel.validation import body, doc, parse_body, query
from trips import receipts
from trips.fees import WrongPin
from trips.model import PaymentRequired, TripError, TripNotFound

from .engine import Engine
from .locations import BadLocation, parse_location
from .model import DispatchError, OfferNotFound, OutsideServiceArea, RiderBusy
from .readers import offers_payload, trip_payload
from .schemas import (
    BatchIn,
    BatchOut,
    CancelIn,
    HistoryQuery,
    LocationIn,
    NearbyQuery,
    OfferList,
    OfferOut,
    OffersQuery,
    QuoteIn,
    QuoteOut,
    StartIn,
    StatusIn,
    StatusOut,
    TripIn,
    TripList,
    TripOut,
)
from .vehicle_ids import nearby_vehicle_id
from .views import offer_view, trip_view

bp = Blueprint("rides", __name__)


def engine() -> Engine:
    eng: Engine = current_app.extensions["dispatch"]
    return eng


@bp.errorhandler(TripError)
@bp.errorhandler(DispatchError)
@bp.errorhandler(RiderBusy)
@bp.errorhandler(OutsideServiceArea)
@bp.errorhandler(PaymentRequired)
@bp.errorhandler(BadLocation)
def _domain_error(exc: Exception) -> Response:
    if isinstance(exc, TripNotFound | OfferNotFound):
        what = "trip" if isinstance(exc, TripNotFound) else "offer"
        return problem_response(Problem(404, "Not Found", f"no such {what} {exc}"))
    if isinstance(exc, OutsideServiceArea):
        return problem_response(Problem(422, "Unprocessable Content", str(exc),
                                        errors=[{"field": exc.field, "message": str(exc)}]))
    if isinstance(exc, BadLocation):
        return problem_response(Problem(422, "Unprocessable Content", str(exc),
                                        errors=[{"field": exc.field, "message": exc.message}]))
    if isinstance(exc, WrongPin):
        return problem_response(Problem(422, "Unprocessable Content", f"pin: {exc}",
                                        errors=[{"field": "pin", "message": str(exc)}]))
    if isinstance(exc, PaymentRequired):
        # The rider's last charge failed: no new trip until a working method is added (which
        # re-tries the charge).
        message = (f"the payment for trip {exc.trip_id} failed ({exc.detail}); "
                   "add a working payment method (POST /v1/riders/me/payment-methods)")
        return problem_response(Problem(402, "Payment Required", f"payment_method: {message}",
                                        type_="/problems/payment-failed",
                                        errors=[{"field": "payment_method",
                                                 "message": message}]))
    # Everything else (illegal transitions, closed offers, busy riders or drivers, a driver
    # offline) is a conflict with the current state.
    return problem_response(Problem(409, "Conflict", str(exc)))


# --- drivers -------------------------------------------------------------------------------

@bp.put("/v1/drivers/me/status")
@require(Role.driver)
@body(StatusIn)
@doc("Go online or offline", responses={200: StatusOut}, tags=["drivers"])
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
@throttle("driver_location")
@doc("Report the driver's location", responses={204: "stored"}, tags=["drivers"])
def post_location(body: LocationIn) -> Response:
    eng = engine()
    loc = parse_location(body, eng.clock.now())
    eng.update_location(current_principal().account_id, loc.lat, loc.lng, loc.ts)
    return Response(status=204)


@bp.post("/v1/locations")
@require(Role.service)
@body(BatchIn)
@throttle("location_batch")
@doc("A fleet gateway's batch of locations", responses={202: BatchOut}, tags=["drivers"])
def post_locations(body: BatchIn) -> Response:
    eng = engine()
    now = eng.clock.now()
    rows = []
    for i, update in enumerate(body.updates):
        # The body parser has checked each row against LocationIn already: the location parser
        # has only the time left to convert and check (the hot path of a fleet gateway).
        ts = None if update.ts is None else parse_location(update, now, f"updates.{i}.").ts
        rows.append((update.driver_id, update.lat, update.lng, ts))
    accepted, rejected = eng.update_locations(rows)
    resp = jsonify(accepted=accepted, rejected=rejected)
    resp.status_code = 202
    return resp


@bp.get("/v1/drivers/me/offers")
@require(Role.driver)
@query(OffersQuery)
@doc("Long-poll for pending offers", responses={200: OfferList}, tags=["offers"])
def get_offers(query: OffersQuery) -> Response:
    # Served here by a WSGI host (a thread waits); the connection edge answers a long-poll
    # itself, without a thread (ridehail/edge/driver_channel.py).
    me = current_principal().account_id
    eng = engine()
    # Subscribe before reading, so an offer made in between wakes us instead of being missed.
    with Waiter(eng.channel, me) as waiter:
        offers = offers_payload(eng, me)
        if not offers and query.wait > 0 and eng.channel.reread_after_wait(
                waiter.wait(query.wait)):
            offers = offers_payload(eng, me)
    return jsonify(offers)


@bp.post("/v1/offers/<id:offer_id>/accept")
@require(Role.driver)
@doc("Accept an offer", responses={200: TripOut}, tags=["offers"])
def accept(offer_id: str) -> Response:
    me = current_principal().account_id
    eng = engine()
    return jsonify(trip_payload(eng, eng.accept_offer(offer_id, me), "driver", me))


@bp.post("/v1/offers/<id:offer_id>/reject")
@require(Role.driver)
@doc("Reject an offer", responses={200: OfferOut}, tags=["offers"])
def reject(offer_id: str) -> Response:
    offer = engine().reject_offer(offer_id, current_principal().account_id)
    return jsonify(offer_view(offer))


# --- riders --------------------------------------------------------------------------------

@bp.get("/v1/vehicles/nearby")
@require(Role.rider)
@query(NearbyQuery)
@doc("Available vehicles near a point (GeoJSON)", responses={200: "FeatureCollection"},
     tags=["riders"])
def nearby(query: NearbyQuery) -> Response:
    settings = current_app.extensions["settings"]
    # A wide radius lets a rider survey (and follow) the fleet: capped by configuration.
    cap = settings.nearby_max_radius_m
    radius = query.radius_m if "radius_m" in query.model_fields_set else min(query.radius_m, cap)
    if radius > cap:
        message = f"must be at most {cap:g} m"
        raise Problem(422, "Unprocessable Content", f"radius_m: {message}",
                      errors=[{"field": "radius_m", "message": message}])
    eng = engine()
    found = eng.nearby(query.lat, query.lng, radius, query.limit, query.vehicle_class)
    # Opaque, per-rider, rotating ids, never the driver's account id (dispatch.vehicle_ids).
    rider, now = current_principal().account_id, eng.clock.now()
    # Plain dicts, byte for byte what geojson.Feature and Point write (coordinates rounded to
    # 6 places): their checks of numbers the index produced were 40% of this view's time.
    features = []
    for n, eta in found:
        vid = nearby_vehicle_id(settings.secret_key, rider, n.driver_id, now,
                                settings.nearby_id_rotate_s)
        features.append({
            "type": "Feature", "id": vid,
            "geometry": {"type": "Point", "coordinates": [round(n.lng, 6), round(n.lat, 6)]},
            "properties": {"vehicle_id": vid, "vehicle_class": n.vehicle_class,
                           "distance_m": quantity(n.distance_m), "eta_s": quantity(eta)},
        })
    return Response(json.dumps({"type": "FeatureCollection", "features": features}),
                    mimetype="application/geo+json")


@bp.post("/v1/quotes")
@require(Role.rider)
@body(QuoteIn)
@throttle("quote")
@doc("The upfront fare and surge a trip request would get now (the request locks its own "
     "quote in); a pickup or dropoff outside the service area is a 422 naming it",
     responses={200: QuoteOut}, tags=["riders"])
def quote(body: QuoteIn) -> Response:
    fare = engine().quote((body.pickup.lat, body.pickup.lng), (body.dropoff.lat, body.dropoff.lng))
    return jsonify(fare_estimate=money(fare.total, fare.currency),
                   surge_multiplier=str(fare.surge_multiplier),
                   distance_m=quantity(fare.distance_m), duration_s=quantity(fare.duration_s))


@bp.get("/v1/trips")
@require(Role.rider, Role.driver)
@query(HistoryQuery)
@doc("My trips, newest first: a rider's, or those a driver was assigned",
     responses={200: TripList}, tags=["trips"])
def trip_history(query: HistoryQuery) -> Response:
    me = current_principal()
    found = receipts.history(current_app.extensions["uow_factory"], me.role.value,
                             me.account_id, query.limit)
    return jsonify([trip_view(t) for t in found])


@bp.post("/v1/trips")
@require(Role.rider)
@body(TripIn)
@throttle("trip_request")
@doc("Request a trip", responses={201: TripOut}, tags=["trips"])
def request_trip(body: TripIn) -> Response:
    me = current_principal().account_id
    eng = engine()
    trip = eng.request_trip(me, (body.pickup.lat, body.pickup.lng),
                            (body.dropoff.lat, body.dropoff.lng), body.vehicle_class)
    resp = jsonify(trip_payload(eng, trip, "rider", me))
    resp.status_code = 201
    resp.headers["Location"] = f"/v1/trips/{trip.id}"
    return resp


@bp.get("/v1/trips/<id:trip_id>")
@require(Role.rider, Role.driver)
@doc("A trip (its rider, its driver, or a driver while its offer is pending); the driver's "
     "position goes to the rider while the driver is coming, waiting or driving",
     responses={200: TripOut}, tags=["trips"])
def get_trip(trip_id: str) -> Response:
    me = current_principal()
    eng = engine()
    # Its rider, its driver, or a driver it was offered to (trips.access.may_view).
    trip = eng.trip_for(trip_id, me.role.value, me.account_id)
    return jsonify(trip_payload(eng, trip, me.role.value, me.account_id))



@bp.post("/v1/trips/<id:trip_id>/cancel")
@require(Role.rider, Role.driver)
@doc("Cancel: the rider before the trip starts (a fee more than RIDEHAIL_CANCEL_FEE_AFTER_S "
     "after assignment); the driver before pickup (re-matched)",
     responses={200: TripOut}, tags=["trips"])
def cancel(trip_id: str) -> Response:
    reason = parse_body(CancelIn).reason if request.data else None
    me = current_principal()
    eng = engine()
    trip = eng.cancel(trip_id, me.role.value, me.account_id, reason)
    return jsonify(trip_payload(eng, trip, me.role.value, me.account_id))


def _driver_step(trip_id: str, step: str) -> Response:
    me = current_principal().account_id
    eng = engine()
    return jsonify(trip_payload(eng, getattr(eng, step)(trip_id, me), "driver", me))


@bp.post("/v1/trips/<id:trip_id>/arrive")
@require(Role.driver)
@doc("The driver is at the pickup", responses={200: TripOut}, tags=["trips"])
def arrive(trip_id: str) -> Response:
    return _driver_step(trip_id, "arrive")


@bp.post("/v1/trips/<id:trip_id>/start")
@require(Role.driver)
@doc("The rider is on board; with pickup PINs on, the body is `{\"pin\": \"1234\"}`, the "
     "rider's PIN (a wrong one is a 422 naming `pin`; too many wrong ones a 409)",
     responses={200: TripOut}, tags=["trips"])
def start(trip_id: str) -> Response:
    pin = parse_body(StartIn).pin if request.data else None
    me = current_principal().account_id
    eng = engine()
    return jsonify(trip_payload(eng, eng.start(trip_id, me, pin), "driver", me))


@bp.post("/v1/trips/<id:trip_id>/no-show")
@require(Role.driver)
@doc("The rider did not come: the driver, after waiting RIDEHAIL_NO_SHOW_WAIT_S at the "
     "pickup, cancels the trip and the rider pays the cancellation fee",
     responses={200: TripOut}, tags=["trips"])
def no_show(trip_id: str) -> Response:
    return _driver_step(trip_id, "no_show")


@bp.post("/v1/trips/<id:trip_id>/complete")
@require(Role.driver)
@doc("The trip is over: the fare is computed and the payment enqueued",
     responses={200: TripOut}, tags=["trips"])
def complete(trip_id: str) -> Response:
    return _driver_step(trip_id, "complete")
