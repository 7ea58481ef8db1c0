"""Request and response bodies of the accounts API (pydantic; also the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ridehail.kernel.validation import Body

from .model import Account

# Deliberately loose (one @, a dot in the domain, no spaces): the real test of an address is
# mail reaching it, and a strict grammar mostly rejects addresses people actually have.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# E.164: a plus, a country code not starting with 0, at most 15 digits in all.
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"

Name = Annotated[str, Field(min_length=1, max_length=100)]
Email = Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN,
                             json_schema_extra={"format": "email"})]
Password = Annotated[str, Field(min_length=8, max_length=128)]
Phone = Annotated[str, Field(pattern=PHONE_PATTERN, examples=["+14155550123"])]
# Literal, not the enum: strict mode accepts only enum instances for an Enum field.
VehicleClassName = Literal["standard", "xl", "premium"]
RoleName = Literal["rider", "driver", "service", "admin"]


class VehicleIn(Body):
    make: Annotated[str, Field(min_length=1, max_length=50)]
    model: Annotated[str, Field(min_length=1, max_length=50)]
    plate: Annotated[str, Field(min_length=1, max_length=16)]
    seats: Annotated[int, Field(ge=1, le=8)]
    vehicle_class: VehicleClassName


class RiderSignUp(Body):
    name: Name
    email: Email
    password: Password
    phone: Phone | None = None


class DriverSignUp(RiderSignUp):
    vehicle: VehicleIn


class LogIn(Body):
    # No policy checks here: a wrong password is a 401, whatever it looks like.
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class SignedUp(BaseModel):
    id: str
    token: str


class Session(BaseModel):
    token: str
    role: RoleName
    id: str


class Rating(BaseModel):
    average: float | None = Field(description="mean stars, 1..5; null before the first rating")
    count: int


class VehicleOut(BaseModel):
    make: str
    model: str
    plate: str
    seats: int
    vehicle_class: VehicleClassName


class Profile(BaseModel):
    id: str
    role: RoleName
    name: str
    email: str
    phone: str | None
    created_at: datetime
    rating: Rating
    vehicle: VehicleOut | None = Field(None, description="drivers only")

    @classmethod
    def of(cls, account: Account) -> Profile:
        v = account.vehicle
        return cls(
            id=account.id, role=account.role.value, name=account.name, email=account.email,
            phone=account.phone, created_at=account.created_at,
            rating=Rating(average=account.rating_average, count=account.rating_count),
            vehicle=None if v is None else VehicleOut(
                make=v.make, model=v.model, plate=v.plate, seats=v.seats,
                vehicle_class=v.vehicle_class.value,
            ),
        )
