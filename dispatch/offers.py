"""Helpers that work inside an open dispatch unit of work: withdrawing a driver's offers and
writing a trip's dispatch record (insert the first time, compare-and-set after)."""

from __future__ import annotations

from .model import DispatchRecord, OfferState
from .unit import DispatchUnit


def save_record(uow: DispatchUnit, record: DispatchRecord, *, new: bool) -> None:
    """`new`: the record was not in the database when this unit read it (no second read)."""
    if new:
        uow.records.add(record)
    else:
        uow.records.save(record)


def withdraw_offers_of_driver(uow: DispatchUnit, driver_id: str, now: float) -> str | None:
    """Close the driver's pending offers as withdrawn; returns the trip to match again."""
    trip_id = None
    for offer in uow.offers.pending_for_driver(driver_id):
        offer.close(OfferState.withdrawn, now)
        uow.offers.save(offer)
        uow.records.append(offer.trip_id, now, DispatchRecord.entry(
            "withdrawn", now, driver_id=driver_id, offer_id=offer.id))
        trip_id = offer.trip_id
    return trip_id
