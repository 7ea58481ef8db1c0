"""Payments and ratings over HTTP: payment methods, receipts, earnings, ratings. Thin: parse,
authorize, call the billing and ratings services, enqueue the Celery task, serialise."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from pydantic import Field, field_validator

from accounts.auth import current_principal, require
from accounts.model import Role
from ridehail.kernel.errors import Problem, problem_response
from ridehail.kernel.validation import Body, body, doc

from . import billing, ratings, tasks
from .fares import NYC_YELLOW_2016
from .ledger import account_key
from .model import Trip, TripNotFound
from .money import format_minor, split_payment
from .payments import TOKEN_PATTERN, PaymentProvider, UnknownPaymentMethod

bp = Blueprint("billing", __name__)


class PaymentMethodIn(Body):
    token: str = Field(min_length=1, max_length=64)


class RatingIn(Body):
    stars: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=500)

    @field_validator("comment")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the INSERT.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


@bp.errorhandler(TripNotFound)
@bp.errorhandler(ratings.NotRatable)
def _domain_error(exc: Exception) -> Response:
    if isinstance(exc, TripNotFound):
        return problem_response(Problem(404, "Not Found", f"no such trip {exc}"))
    return problem_response(Problem(409, "Conflict", str(exc)))


def _uow(readonly: bool = False) -> Any:
    return current_app.extensions["uow_factory"](readonly=readonly)


def _settings() -> Any:
    return current_app.extensions["settings"]


def _field_problem(field: str, message: str, status: int = 422) -> Problem:
    return Problem(status, "Unprocessable Content", f"{field}: {message}",
                   errors=[{"field": field, "message": message}])


def require_payment_standing(rider_id: str) -> None:
    """A rider whose last charge failed may not request a trip until they add a working
    method (which re-tries the charge). Called by `POST /v1/trips`."""
    with _uow(readonly=True) as uow:
        failed = billing.blocking_payment(uow, rider_id)
    if failed is not None:
        message = (f"the payment for trip {failed.trip_id} failed ({failed.last_error}); "
                   "add a working payment method (POST /v1/riders/me/payment-methods)")
        raise Problem(402, "Payment Required", f"payment_method: {message}",
                      type_="/problems/payment-failed",
                      errors=[{"field": "payment_method", "message": message}])


@bp.post("/v1/riders/me/payment-methods")
@require(Role.rider)
@body(PaymentMethodIn)
@doc("Add a payment method (becomes the default; re-tries a failed charge)",
     responses={201: "the method"}, tags=["payments"])
def add_payment_method(body: PaymentMethodIn) -> Response:
    if not TOKEN_PATTERN.match(body.token):
        raise _field_problem("token", "expected a provider token like tok_xxx "
                                      "(lower-case letters, digits, _)")
    provider: PaymentProvider = current_app.extensions["payment_provider"]
    try:
        provider.check_token(body.token)
    except UnknownPaymentMethod as exc:
        raise _field_problem("token", str(exc).removeprefix("token: ")) from None
    me = current_principal().account_id
    reopened = billing.set_payment_method(current_app.extensions["uow_factory"], me,
                                          body.token, time.time())
    for trip_id in reopened:
        tasks.enqueue_charge(current_app.extensions["celery"], trip_id)
    resp = jsonify(token=body.token, default=True, retried_trips=reopened)
    resp.status_code = 201
    return resp


def _my_trip(uow: Any, trip_id: str) -> Trip:
    """The trip if the caller is its rider or its driver; 404 for anyone else."""
    if not trip_id.isdigit() or len(trip_id) > 20:
        raise TripNotFound(trip_id)
    me = current_principal()
    trip: Trip | None = uow.trips.get(trip_id)
    if trip is None or not ((me.role == Role.rider and trip.rider_id == me.account_id) or
                            (me.role == Role.driver and trip.driver_id == me.account_id)):
        raise TripNotFound(trip_id)
    return trip


def _money(amount: int | None, currency: str) -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currency": currency,
                                        "display": format_minor(amount)}


@bp.get("/v1/trips/<trip_id>/receipt")
@require(Role.rider, Role.driver)
@doc("The trip's receipt: fare, split, payment status and attempts, ratings",
     responses={200: "the receipt"}, tags=["payments"])
def receipt(trip_id: str) -> Response:
    with _uow(readonly=True) as uow:
        trip = _my_trip(uow, trip_id)
        pay = uow.payments.get(trip_id)
        lines = uow.ledger.for_trip(trip_id)
        given = uow.ratings.for_trip(trip_id)
    cur = trip.currency
    by_kind = {e.kind: e for e in lines}
    if by_kind:
        split = {"rider_charge": -by_kind["rider_charge"].amount,
                 "driver_payout": by_kind["driver_payout"].amount,
                 "platform_fee": by_kind["platform_fee"].amount}
    elif trip.fare_final is not None:  # not captured yet: what the split will be
        split = split_payment(trip.fare_final, _settings().commission_bps).to_dict()
    else:
        split = {}
    return jsonify({
        "trip_id": trip.id, "trip_state": trip.state.value, "currency": cur,
        "fare": {
            "total": _money(trip.fare_final, cur), "estimate": _money(trip.fare_estimate, cur),
            "surge_multiplier": trip.surge, "booking_fee": _money(NYC_YELLOW_2016.booking_fee, cur),
            "distance_m": trip.distance_m, "duration_s": trip.duration_s,
        },
        "split": {**{k: _money(v, cur) for k, v in split.items()},
                  "commission_bps": _settings().commission_bps, "final": bool(by_kind)},
        "payment": {
            "state": pay.state if pay else trip.payment_state,
            "attempts": pay.attempts if pay else 0,
            "last_error": pay.last_error if pay else None,
            "charge_id": pay.provider_charge_id if pay else None,
            "captured_at": pay.captured_at if pay else None,
        },
        "ledger": [{"kind": e.kind, "account": e.account, "amount": e.amount} for e in lines],
        "ratings": {r.rater_role: {"stars": r.stars, "applied": r.applied} for r in given},
    })


@bp.get("/v1/drivers/me/earnings")
@require(Role.driver)
@doc("The driver's balance, per-trip payouts and totals", responses={200: "earnings"},
     tags=["payments"])
def earnings() -> Response:
    me = current_principal().account_id
    account = account_key("driver", me)
    with _uow(readonly=True) as uow:
        count, balance = uow.ledger.totals(account)
        recent = uow.ledger.for_account(account, limit=100)
    cur = recent[0].currency if recent else "USD"
    return jsonify({
        "driver_id": me, "currency": cur, "balance": _money(balance, cur),
        "totals": {"trips": count, "payout": _money(balance, cur)},
        "trips": [{"trip_id": e.trip_id, "payout": _money(e.amount, e.currency),
                   "at": e.created_at} for e in recent],
    })


@bp.post("/v1/trips/<trip_id>/rating")
@require(Role.rider, Role.driver)
@body(RatingIn)
@doc("Rate the other party of a completed trip, once (applied asynchronously)",
     responses={202: "the rating, queued"}, tags=["ratings"])
def rate(trip_id: str, body: RatingIn) -> Response:
    if not trip_id.isdigit() or len(trip_id) > 20:
        raise TripNotFound(trip_id)
    me = current_principal()
    rating = ratings.rate(current_app.extensions["uow_factory"], trip_id, me.role.value,
                          me.account_id, body.stars, body.comment, time.time())
    tasks.enqueue_rating(current_app.extensions["celery"], trip_id, rating.rater_role)
    resp = jsonify(trip_id=trip_id, rater_role=rating.rater_role, ratee_id=rating.ratee_id,
                   stars=rating.stars, applied=False)
    resp.status_code = 202
    return resp


@bp.get("/v1/me/rating")
@require(Role.rider, Role.driver)
@doc("My rating: average, count and the average of the last 20", responses={200: "rating"},
     tags=["ratings"])
def my_rating() -> Response:
    me = current_principal().account_id
    agg = ratings.aggregate(current_app.extensions["uow_factory"], me)
    return jsonify(account_id=me, **agg.to_dict())
