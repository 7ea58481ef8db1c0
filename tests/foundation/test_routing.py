"""The one rule for ids (ridehail.kernel.routing.is_id), used by the `<id:...>` URL converter
and the DriverId body field."""

from __future__ import annotations

import pytest

from ridehail.kernel.routing import is_id


@pytest.mark.parametrize("value", ["0", "1", "384903438553104384", str(2**63 - 1), "9" * 18])
def test_decimal_ids_below_2_63_are_ids(value: str) -> None:
    assert is_id(value)


@pytest.mark.parametrize("value", [
    "", "²", "1²", "١٢٣",  # Unicode digits: str.isdigit says yes, int() and BIGINT say no
    "-1", "+1", " 1", "1 ", "1.5", "abc", "0x10", "1_000",
    str(2**63), "9" * 19, "9" * 20, "1" + "0" * 19,  # beyond a signed 64-bit BIGINT
])
def test_anything_else_is_not_an_id(value: str) -> None:
    assert not is_id(value)
