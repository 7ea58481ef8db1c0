"""URL routing: what an id in a URL or a body may be, and the app's URL map.

Ids are decided once: they are BIGINT columns written as decimal text, so anything else cannot
exist. The `id` URL converter turns any other path segment into a 404 before a view (or the
database driver, which would fail with a 500) sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.routing import BaseConverter, Map, Rule, RuleFactory, ValidationError
from werkzeug.routing.matcher import StateMachineMatcher

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


class RecentMatches(StateMachineMatcher):
    """werkzeug's matcher, keeping its answers for the paths it matched recently.

    Its `match` defines a recursive closure on every call: a function, its cells and a set in
    a reference cycle, left to the garbage collector. At hundreds of requests a second that
    was most of the process's cyclic garbage (gc's DEBUG_SAVEALL during bench/connections.py:
    20,000 of 33,000 objects in one collection), and the collections it caused paused every
    connection for 150-300 ms. The hot paths (/health, nearby, a driver's location and
    offers) repeat, so they are matched once; a path that fails to match is never kept."""

    SIZE = 2048  # distinct (path, method) answers kept; then the memory starts over

    def __init__(self, merge_slashes: bool) -> None:
        super().__init__(merge_slashes)
        self._answers: dict[tuple[str, str, str, bool], tuple[Rule, dict[str, Any]]] = {}

    def update(self) -> None:  # before the first match after rules were added
        self._answers.clear()
        super().update()

    def match(self, domain: str, path: str, method: str,
              websocket: bool) -> tuple[Rule, dict[str, Any]]:
        key = (domain, path, method, websocket)
        answer = self._answers.get(key)
        if answer is None:
            rule, values = super().match(domain, path, method, websocket)
            answer = (rule, dict(values))
            if len(self._answers) >= self.SIZE:
                self._answers.clear()
            self._answers[key] = answer
        rule, values = answer
        return rule, dict(values)  # the view's own copy: url_value_preprocessors pop from it


class RoutingMap(Map):
    """The app's URL map (`Flask.url_map_class`), matching with `RecentMatches`."""

    def __init__(self, rules: Iterable[RuleFactory] | None = None, *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(None, *args, **kwargs)
        self._matcher = RecentMatches(self.merge_slashes)  # werkzeug's one matcher attribute
        for rule in rules or ():
            self.add(rule)
