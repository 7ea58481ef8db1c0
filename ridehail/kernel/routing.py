"""What an id in a URL or a body may be, decided once: ids are BIGINT columns written as
decimal text, so anything else cannot exist. The `id` URL converter turns any other path
segment into a 404 before a view (or the database driver, which would fail with a 500) sees it.
"""

from __future__ import annotations

from werkzeug.routing import BaseConverter, ValidationError

MAX_DIGITS = 19  # 2**63 - 1 has 19 digits
ID_LIMIT = 2**63  # BIGINT is signed 64-bit; our ids are never negative


def is_id(value: str) -> bool:
    """True when `value` is a 64-bit id: 1 to 19 ASCII digits, below 2**63. Not "²" (a
    Unicode digit `str.isdigit` accepts), not "-1", not 20 digits."""
    return (0 < len(value) <= MAX_DIGITS and value.isascii() and value.isdigit()
            and int(value) < ID_LIMIT)


class IdConverter(BaseConverter):
    """`<id:trip_id>`: the segment as text, if it is a 64-bit id; otherwise the rule does not
    match, so the request is a 404 problem like any unknown path."""

    def to_python(self, value: str) -> str:
        if not is_id(value):
            raise ValidationError()
        return value

    def to_url(self, value: object) -> str:
        return str(value)
