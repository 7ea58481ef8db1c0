"""The double-entry ledger. A captured trip writes three lines that sum to zero:

    rider:<id>      -rider_charge   (the rider pays)
    driver:<id>     +driver_payout  (the driver earns)
    platform        +platform_fee   (the commission)

An account's balance is the sum of its lines. Lines are keyed by (trip_id, kind), so a trip's
lines can exist once only, whatever retries or redeliveries happen.
"""

from __future__ import annotations

from dataclasses import dataclass

from .money import PaymentSplit

PLATFORM = "platform"
KINDS = ("rider_charge", "driver_payout", "platform_fee")


def account_key(role: str, account_id: str) -> str:
    return f"{role}:{account_id}"


@dataclass(frozen=True)
class LedgerEntry:
    trip_id: str
    kind: str
    account: str
    amount: int  # signed minor units
    currency: str
    created_at: float


class Unbalanced(ValueError):
    pass


def entries_for(trip_id: str, rider_id: str, driver_id: str, split: PaymentSplit,
                currency: str, now: float) -> list[LedgerEntry]:
    lines = [
        LedgerEntry(trip_id, "rider_charge", account_key("rider", rider_id),
                    -split.rider_charge, currency, now),
        LedgerEntry(trip_id, "driver_payout", account_key("driver", driver_id),
                    split.driver_payout, currency, now),
        LedgerEntry(trip_id, "platform_fee", PLATFORM, split.platform_fee, currency, now),
    ]
    check_balanced(lines)
    return lines


def check_balanced(lines: list[LedgerEntry]) -> None:
    if sum(e.amount for e in lines) != 0:
        raise Unbalanced(f"ledger lines do not balance: {[(e.kind, e.amount) for e in lines]}")
