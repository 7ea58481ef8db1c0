"""The accounts blueprint: sign-up, log-in and log-out, and the caller's profile. Thin:
validate, call `accounts.service`, serialise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from ridehail.kernel.errors import Problem
from ridehail.kernel.throttle import throttle
from ridehail.kernel.validation import body, doc

from . import service
from .auth import announce_revoked, current_principal, require, token_from_request
from .model import (
    AccountNotFound,
    DuplicateEmail,
    InvalidCredentials,
    Role,
    Vehicle,
    VehicleClass,
    WeakPassword,
)
from .schemas import DriverSignUp, LogIn, Profile, RiderSignUp, Session, SignedUp
from .unit import AccountsUnits

bp = Blueprint("accounts", __name__)


def _units() -> AccountsUnits:
    units: AccountsUnits = current_app.extensions["uow_factory"]
    return units


def _json(model: Any, status: int = 200) -> Response:
    resp = jsonify(model.model_dump(mode="json"))
    resp.status_code = status
    return resp


def _email_taken(exc: DuplicateEmail) -> Problem:
    return Problem(409, "Conflict", "an account with this email already exists",
                   errors=[{"field": "email", "message": "already registered"}])


def _weak_password(exc: WeakPassword) -> Problem:
    return Problem(422, "Unprocessable Content", f"password: {exc.reason}",
                   errors=[{"field": "password", "message": exc.reason}])


@bp.post("/v1/riders")
@doc("Sign up as a rider", responses={201: SignedUp, 409: "email already registered",
                                     422: "invalid or weak password"},
     tags=["accounts"], auth=False)
@body(RiderSignUp)
@throttle("sign_up_account", "sign_up_ip")
def sign_up_rider(body: RiderSignUp) -> Response:
    try:
        account, token = service.sign_up_rider(
            _units(), name=body.name, email=body.email, password=body.password, phone=body.phone)
    except WeakPassword as exc:
        raise _weak_password(exc) from None
    except DuplicateEmail as exc:
        raise _email_taken(exc) from None
    return _json(SignedUp(id=account.id, token=token), 201)


@bp.post("/v1/drivers")
@doc("Sign up as a driver, with a vehicle",
     responses={201: SignedUp, 409: "email already registered",
                422: "invalid or weak password"}, tags=["accounts"], auth=False)
@body(DriverSignUp)
@throttle("sign_up_account", "sign_up_ip")
def sign_up_driver(body: DriverSignUp) -> Response:
    v = body.vehicle
    vehicle = Vehicle(make=v.make, model=v.model, plate=v.plate, seats=v.seats,
                      vehicle_class=VehicleClass(v.vehicle_class))
    try:
        account, token = service.sign_up_driver(
            _units(), name=body.name, email=body.email, password=body.password,
            vehicle=vehicle, phone=body.phone)
    except WeakPassword as exc:
        raise _weak_password(exc) from None
    except DuplicateEmail as exc:
        raise _email_taken(exc) from None
    return _json(SignedUp(id=account.id, token=token), 201)


@bp.post("/v1/sessions")
@doc("Log in: a new bearer token", responses={200: Session, 401: "wrong email or password"},
     tags=["accounts"], auth=False)
@body(LogIn)
@throttle("log_in_account", "log_in_ip")
def log_in(body: LogIn) -> Response:
    try:
        account, token = service.log_in(_units(), body.email, body.password)
    except InvalidCredentials:
        raise Problem(401, "Unauthorized", "wrong email or password",
                      headers={"WWW-Authenticate": 'Bearer realm="ridehail"'}) from None
    return _json(Session(token=token, role=account.role.value, id=account.id))


@bp.delete("/v1/sessions/current")
@doc("Log out: revoke the token this request carries", responses={204: "revoked"},
     tags=["accounts"])
@require()
def log_out() -> Response:
    token = token_from_request()
    assert token is not None  # require() has authenticated it
    service.revoke(_units(), token)
    announce_revoked(current_principal().account_id, token)
    return Response(status=204)


@bp.delete("/v1/sessions")
@doc("Log out everywhere: revoke every token of my account, this one included",
     responses={204: "all revoked"}, tags=["accounts"])
@require()
def log_out_everywhere() -> Response:
    account_id = current_principal().account_id
    service.revoke_all(_units(), account_id)
    announce_revoked(account_id)
    return Response(status=204)


@bp.get("/v1/me")
@doc("My profile, with my rating (and my vehicle, for drivers)", responses={200: Profile},
     tags=["accounts"])
@require(Role.rider, Role.driver)
def me() -> Response:
    principal = current_principal()
    try:
        account = service.profile(_units(), principal.account_id)
    except AccountNotFound:  # deleted after the token was checked
        raise Problem(401, "Unauthorized", "the account no longer exists") from None
    out = Profile.of(account).model_dump(mode="json")
    if account.role != Role.driver:
        out.pop("vehicle")
    return jsonify(out)
