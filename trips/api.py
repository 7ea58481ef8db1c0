"""Payments and ratings over HTTP: payment methods, receipts, earnings, ratings. Thin: parse,
authorize, call the billing and ratings services, enqueue the Celery task, serialise."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify
from pydantic import Field, field_validator

from accounts.auth import current_principal, require
from accounts.model import Role
from ridehail.kernel.errors import Problem, problem_response
from ridehail.kernel.formats import iso, money
from ridehail.kernel.validation import Body, body, doc

from . import billing, ratings, receipts, tasks
from .fares import Tariff
from .model import TripNotFound
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


def _field_problem(field: str, message: str, status: int = 422) -> Problem:
    return Problem(status, "Unprocessable Content", f"{field}: {message}",
                   errors=[{"field": field, "message": message}])


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


@bp.get("/v1/trips/<id:trip_id>/receipt")
@require(Role.rider, Role.driver)
@doc("The trip's receipt: fare, split, payment status and attempts, ratings",
     responses={200: "the receipt"}, tags=["payments"])
def receipt(trip_id: str) -> Response:
    me = current_principal()
    # The booking fee shown is the one of the tariff the engine prices trips with.
    tariff: Tariff = current_app.extensions["dispatch"].tariff
    r = receipts.receipt(current_app.extensions["uow_factory"], trip_id, me.role.value,
                         me.account_id, tariff=tariff,
                         commission_bps=current_app.extensions["settings"].commission_bps)
    trip, pay, cur = r.trip, r.payment, r.trip.currency
    return jsonify({
        "trip_id": trip.id, "trip_state": trip.state.value, "currency": cur,
        "fare": {
            "total": money(trip.fare_final, cur), "estimate": money(trip.fare_estimate, cur),
            "surge_multiplier": trip.surge, "booking_fee": money(r.booking_fee, cur),
            "rule": trip.fare_rule,
            "distance_m": trip.distance_m, "duration_s": trip.duration_s,
        },
        "split": {**{k: money(v, cur) for k, v in r.split.items()},
                  "commission_bps": r.commission_bps, "final": r.final},
        "payment": {
            "state": pay.state if pay else trip.payment_state,
            "attempts": pay.attempts if pay else 0,
            "last_error": pay.last_error if pay else None,
            "charge_id": pay.provider_charge_id if pay else None,
            "captured_at": iso(pay.captured_at) if pay else None,
        } if me.role == Role.rider else {"state": trip.payment_state},
        "ledger": [{"kind": e.kind, "account": e.account, "amount": e.amount}
                   for e in r.ledger],
        "ratings": {g.rater_role: {"stars": g.stars, "applied": g.applied} for g in r.ratings},
    })


@bp.get("/v1/drivers/me/earnings")
@require(Role.driver)
@doc("The driver's balance, per-trip payouts and totals", responses={200: "earnings"},
     tags=["payments"])
def earnings() -> Response:
    e = receipts.earnings(current_app.extensions["uow_factory"],
                          current_principal().account_id)
    return jsonify({
        "driver_id": e.driver_id, "currency": e.currency, "balance": money(e.balance, e.currency),
        "totals": {"trips": e.trips, "payout": money(e.balance, e.currency)},
        "trips": [{"trip_id": x.trip_id, "payout": money(x.amount, x.currency),
                   "at": iso(x.created_at)} for x in e.recent],
    })


@bp.post("/v1/trips/<id:trip_id>/rating")
@require(Role.rider, Role.driver)
@body(RatingIn)
@doc("Rate the other party of a completed trip, once (applied asynchronously)",
     responses={202: "the rating, queued"}, tags=["ratings"])
def rate(trip_id: str, body: RatingIn) -> Response:
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
