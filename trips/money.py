"""Money arithmetic: integer minor units (cents), exact rationals, one rounding per amount.

Money never passes through ``float``: amounts are ``int`` minor units, rates are ``Decimal`` or
``Fraction``, and every conversion to a whole amount goes through :func:`round_half_up` on an exact
``Fraction``. Floats are refused at the boundary so a float cannot sneak into the money path.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

Exact = int | Decimal | Fraction

BASIS_POINTS = 10_000


def exact(value: Exact, field: str) -> Fraction:
    """``value`` as an exact Fraction; floats, bools and non-finite Decimals raise ValueError."""
    return Fraction(_checked(value, field))


def exact_ratio(value: Exact, field: str) -> tuple[int, int]:
    """`exact` as an integer pair in lowest terms (a Fraction's numerator and denominator),
    without building the Fraction: for the hot paths."""
    return ratio(_checked(value, field))


def _checked(value: Exact, field: str) -> Exact:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | Fraction):
        raise ValueError(f"{field}: expected int, Decimal or Fraction, got {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{field}: must be finite, got {value}")
    return value


def round_half_up(value: Fraction) -> int:
    """Nearest integer, halves away from zero (the receipt convention, not banker's rounding)."""
    return round_ratio_half_up(value.numerator, value.denominator)


# The hot paths (every quote, every meter) do the same exact arithmetic on integer pairs: a
# Fraction reduces by a gcd at every step, which cost ~50 us per fare; the pairs need none.

def ratio(value: float | Exact) -> tuple[int, int]:
    """An exact number (int, float, Decimal, Fraction) as (numerator, denominator > 0): a
    float's exact binary value, as Fraction(float) has it. NaN and infinities raise."""
    n, d = value.as_integer_ratio()
    return n, d


def round_ratio_half_up(n: int, d: int) -> int:
    """`round_half_up` of n / d, d > 0 (unreduced is fine: the result is scale-free)."""
    if n >= 0:
        return (2 * n + d) // (2 * d)
    return -((-2 * n + d) // (2 * d))


def above(value: float | Exact, reference: float | Exact, fraction: Exact) -> bool:
    """value > reference x (1 + fraction), exactly."""
    vn, vd = ratio(value)
    rn, rd = ratio(reference)
    fn, fd = ratio(fraction)
    return vn * rd * fd > rn * (fd + fn) * vd


def below(value: float | Exact, reference: float | Exact, fraction: Exact) -> bool:
    """value < reference x (1 - fraction), exactly."""
    vn, vd = ratio(value)
    rn, rd = ratio(reference)
    fn, fd = ratio(fraction)
    return vn * rd * fd < rn * (fd - fn) * vd


def check_amount(value: object, field: str) -> int:
    """A money amount in minor units: a non-negative int (not bool, not float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: expected an int amount in minor units, got {value!r}")
    if value < 0:
        raise ValueError(f"{field}: must be >= 0, got {value}")
    return value


@dataclass(frozen=True)
class PaymentSplit:
    """How one rider charge is shared: ``rider_charge == driver_payout + platform_fee`` always."""

    rider_charge: int
    driver_payout: int
    platform_fee: int

    def to_dict(self) -> dict[str, int]:
        return {
            "rider_charge": self.rider_charge,
            "driver_payout": self.driver_payout,
            "platform_fee": self.platform_fee,
        }


def split_payment(
    rider_charge: int, commission_bps: int, *, platform_only: int = 0
) -> PaymentSplit:
    """Split a rider charge into driver payout and platform fee.

    ``platform_only`` (e.g. the booking fee) goes wholly to the platform; the commission, in basis
    points, applies to the rest and is rounded half-up once. The driver gets the remainder, so the
    three amounts balance exactly by construction, whatever the rounding.
    """
    check_amount(rider_charge, "rider_charge")
    check_amount(platform_only, "platform_only")
    if isinstance(commission_bps, bool) or not isinstance(commission_bps, int):
        raise ValueError(f"commission_bps: expected an int, got {commission_bps!r}")
    if not 0 <= commission_bps <= BASIS_POINTS:
        raise ValueError(f"commission_bps: must be in 0..{BASIS_POINTS}, got {commission_bps}")
    if platform_only > rider_charge:
        raise ValueError(f"platform_only: {platform_only} exceeds rider_charge {rider_charge}")
    shared = rider_charge - platform_only
    fee = platform_only + round_half_up(Fraction(shared * commission_bps, BASIS_POINTS))
    return PaymentSplit(rider_charge, rider_charge - fee, fee)
