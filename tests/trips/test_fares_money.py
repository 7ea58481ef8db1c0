"""Money: the platform split balances, and no fare amount ever goes through float."""

from __future__ import annotations

import ast
import decimal
import inspect
import math
import textwrap
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import trips.fares as fares
import trips.money as money
from trips.fares import (
    NYC_YELLOW_2016,
    Tariff,
    TripMeasure,
    estimate_fare,
    final_fare,
    measure_route,
    price,
)
from trips.money import round_half_up, split_payment

SURGES = [Decimal(n) / 10 for n in range(10, 31)]  # 1.0 .. 3.0 by 0.1, as SurgePricer publishes


def flat(base: int) -> Tariff:
    """Only a flag drop, so the metered amount is exactly ``base``."""
    return Tariff("t", "USD", base, 0, Decimal(1000), 0)


def exact_surge(amount: int, m: Decimal) -> int:
    return round_half_up(Fraction(amount) * (Fraction(m) - 1))


# -- split ------------------------------------------------------------------------------------


@given(
    charge=st.integers(0, 10**12),
    bps=st.integers(0, 10_000),
    reserved=st.integers(0, 10**12),
)
def test_split_always_balances_exactly(charge: int, bps: int, reserved: int) -> None:
    reserved = min(reserved, charge)
    s = split_payment(charge, bps, platform_only=reserved)
    assert s.rider_charge == s.driver_payout + s.platform_fee == charge
    assert all(type(x) is int for x in (s.rider_charge, s.driver_payout, s.platform_fee))
    assert 0 <= s.driver_payout <= charge and reserved <= s.platform_fee <= charge
    commission = Fraction((charge - reserved) * bps, 10_000)
    assert abs((s.platform_fee - reserved) - commission) <= Fraction(1, 2)


def test_split_known_values() -> None:
    assert split_payment(1000, 2500).to_dict() == {
        "rider_charge": 1000,
        "driver_payout": 750,
        "platform_fee": 250,
    }
    # 25% of 1001 = 250.25 -> 250; with a 150 booking fee kept by the platform: 150 + 212.75 -> 363
    assert split_payment(1001, 2500).platform_fee == 250
    assert split_payment(1001, 2500, platform_only=150).platform_fee == 363
    assert split_payment(3, 5000).platform_fee == 2  # 1.5 rounds half up


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((10.0, 100), "rider_charge"),
        ((-1, 100), "rider_charge"),
        ((100, 10_001), "commission_bps"),
        ((100, 2.5), "commission_bps"),
        ((100, 100, 101), "platform_only"),
    ],
)
def test_split_bad_input(args: tuple[object, ...], field: str) -> None:
    charge, bps, *rest = args
    with pytest.raises(ValueError, match=field):
        split_payment(charge, bps, platform_only=rest[0] if rest else 0)  # type: ignore[arg-type]


# -- money never in float ---------------------------------------------------------------------


def test_surge_grid_contains_cases_where_float_rounding_differs() -> None:
    """Guard for the guard: on this grid a float implementation gives different cents, so the
    exact-match test below would fail if someone computed surge (or any line) through float."""
    diverging = [
        (a, m)
        for a in range(1, 2001)
        for m in SURGES
        if round_half_up(Fraction(a * (float(m) - 1.0))) != exact_surge(a, m)
    ]
    assert (15, Decimal("1.9")) in diverging
    assert len(diverging) > 50


def test_surge_amounts_are_exact_where_float_would_be_wrong() -> None:
    for a in range(1, 2001):
        for m in SURGES:
            fare = price(flat(a), measure_route(flat(a), 0, 0), surge=m)
            assert fare.surge_amount == exact_surge(a, m), (a, m)
    # 15 x 0.9 = 13.5 exactly -> 14 cents, but 15 * (1.9 - 1.0) in float is 13.499999999999998.
    fare = price(flat(15), measure_route(flat(15), 0, 0), surge=Decimal("1.9"))
    assert fare.surge_amount == 14 and 15 * (1.9 - 1.0) < 13.5


@given(
    base=st.integers(0, 100_000),
    per_km=st.integers(0, 1000),
    per_min=st.integers(0, 500),
    km_thousandths=st.integers(0, 200_000),
    seconds=st.integers(0, 20_000),
    surge=st.sampled_from(SURGES),
)
def test_price_matches_an_exact_reference(
    base: int, per_km: int, per_min: int, km_thousandths: int, seconds: int, surge: Decimal
) -> None:
    t = Tariff("t", "USD", base, per_km, Decimal(1000), per_min, minimum=0, booking_fee=99)
    fare = price(t, measure_route(t, km_thousandths, seconds), surge=surge)
    dist = round_half_up(Fraction(per_km * km_thousandths, 1000))
    time = round_half_up(Fraction(per_min * seconds, 60))
    metered = base + dist + time
    assert (fare.distance, fare.time) == (dist, time)
    assert fare.total == metered + exact_surge(metered, surge) + 99


def _fraction_reference(tariff: Tariff, d: float, t: float, surge: Decimal) -> tuple[int, ...]:
    """The receipt's lines in Fraction arithmetic (how price computed them before it used
    integer pairs): the oracle for the integer version."""
    d_units = Fraction(d) / Fraction(tariff.distance_unit_m)
    t_units = Fraction(t) / Fraction(tariff.time_unit_s)
    if tariff.whole_units:
        dropped = math.floor(d_units + t_units)
        dist = tariff.distance_price * math.floor(d_units)
        time = tariff.time_price * dropped - dist
    else:
        dist = round_half_up(tariff.distance_price * d_units)
        time = round_half_up(tariff.time_price * t_units)
    metered = tariff.base + dist + time
    return dist, time, round_half_up(metered * (Fraction(surge) - 1))


ODD_UNITS = Tariff("t", "USD", 300, 137, Decimal("1609.344") / 5, 41, Decimal("57.3"))


@given(d=st.floats(0, 1e6), t=st.floats(0, 1e5), surge=st.sampled_from(SURGES),
       tariff=st.sampled_from([NYC_YELLOW_2016, ODD_UNITS]))
@example(d=321.8688, t=0.0, surge=Decimal(1), tariff=NYC_YELLOW_2016)  # one unit, exactly
# 7 units of 1609.344 / 5 m as a float is a hair under 7: 6 whole units; in float, 7.
@example(d=2253.0816, t=0.0, surge=Decimal(1), tariff=NYC_YELLOW_2016)
@example(d=0.1 + 0.2, t=60.0 * 3, surge=Decimal("1.9"), tariff=ODD_UNITS)
def test_price_of_any_float_measure_matches_fraction_arithmetic(
        d: float, t: float, surge: Decimal, tariff: Tariff) -> None:
    fare = price(tariff, TripMeasure(d, t, d, t), surge=surge)
    assert (fare.distance, fare.time, fare.surge_amount) == _fraction_reference(
        tariff, d, t, surge)


@given(v=st.floats(0, 1e7), r=st.floats(0, 1e7),
       f=st.sampled_from([Decimal(0), Decimal("0.1"), Decimal("0.25"), Decimal("0.333")]))
@example(v=125.0, r=100.0, f=Decimal("0.25"))  # exactly at the line: neither above nor below
@example(v=75.0, r=100.0, f=Decimal("0.25"))
@example(v=0.30000000000000004, r=0.1 + 0.2, f=Decimal(0))
@example(v=110.00000000000001, r=100.0, f=Decimal("0.1"))  # above 110; in float, not above
def test_the_fare_rules_comparisons_are_exact(v: float, r: float, f: Decimal) -> None:
    assert money.above(v, r, f) == (Fraction(v) > Fraction(r) * (1 + Fraction(f)))
    assert money.below(v, r, f) == (Fraction(v) < Fraction(r) * (1 - Fraction(f)))


MONEY_FIELDS = (
    "base",
    "distance",
    "time",
    "booking_fee",
    "surge_amount",
    "minimum_fare",
    "minimum_adjustment",
    "total",
)


def test_every_money_field_is_int_and_decimal_context_traps_float_mixing() -> None:
    trace = [(0.0, 40.75, -73.98), (200.0, 40.76, -73.98), (500.0, 40.761, -73.98)]
    with decimal.localcontext() as ctx:
        # Any Decimal(float) construction or Decimal/float comparison now raises.
        ctx.traps[decimal.FloatOperation] = True
        results = [
            final_fare(NYC_YELLOW_2016, trace, surge=Decimal("1.7"), surcharges={"tax": 50}),
            estimate_fare(NYC_YELLOW_2016, (40.75, -73.98), (40.8, -73.95), surge=Decimal("2.3")),
        ]
    for fare in results:
        for name in MONEY_FIELDS:
            assert type(getattr(fare, name)) is int, name
        assert type(fare.surge_multiplier) is Decimal
        assert all(type(v) is int for _, v in fare.surcharges)


def test_floats_are_refused_where_money_enters() -> None:
    m = measure_route(NYC_YELLOW_2016, 1000, 100)
    with pytest.raises(ValueError, match="surge"):
        price(NYC_YELLOW_2016, m, surge=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="surcharges"):
        price(NYC_YELLOW_2016, m, surcharges={"tax": 0.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="base"):
        Tariff("t", "USD", 2.5, 1, Decimal(1), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distance_unit_m"):
        Tariff("t", "USD", 1, 1, 0.2, 1)  # type: ignore[arg-type]


def _float_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "float"
        ):
            found.append(f"float() at line {node.lineno}")
        if isinstance(node, ast.Constant) and type(node.value) is float:
            found.append(f"float literal {node.value} at line {node.lineno}")
    return found


def test_the_static_guard_sees_float() -> None:
    assert len(_float_uses("def f(a):\n    return round(float(a) * 1.15)\n")) == 2


@pytest.mark.parametrize(
    "source",
    [
        inspect.getsource(money),
        inspect.getsource(fares.price),
        inspect.getsource(fares.FareBreakdown),
    ],
    ids=["money.py", "fares.price", "fares.FareBreakdown"],
)
def test_money_code_has_no_float_conversions_or_literals(source: str) -> None:
    """Static guard: the code that turns units into cents never calls float() or uses a float
    literal (physical quantities are made exact, as integer pairs, before prices touch them)."""
    assert _float_uses(textwrap.dedent(source)) == []
