"""How money and times look on the wire: one formatter each for every response."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def format_minor(amount: int, exponent: int = 2) -> str:
    """``1250`` -> ``"12.50"`` for display (exponent = the currency's minor digits)."""
    return str(Decimal(amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def money(amount: int | None, currency: str, exponent: int = 2) -> dict[str, Any] | None:
    """An amount in minor units as the API shows it; None stays None."""
    if amount is None:
        return None
    return {"amount": amount, "currency": currency, "display": format_minor(amount, exponent)}


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC; None stays None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def quantity(value: float | None, digits: int = 1) -> float | None:
    """A measured quantity (metres, seconds) as the API shows it: always a JSON float rounded
    to `digits`, never an integer one time and a float the next; None stays None."""
    return None if value is None else float(round(value, digits))
