"""Which new passwords are refused, after NIST SP 800-63B 5.1.1.2 (issue 13, item 6): fewer
than 8 characters, on the shipped list of common and breached passwords (accounts/data/),
the account's own email or name, or only whitespace. No composition rules ("a digit and a
symbol"): they make passwords harder to remember, not to guess.

Applied when a password is chosen (sign-up), never at log-in: existing accounts keep working.
"""

from __future__ import annotations

import functools
from importlib import resources

MIN_LENGTH = 8


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased (read once per process: about 8,000 entries)."""
    text = resources.files("accounts").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def weakness(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why `password` is refused, in words for the user; None when it is acceptable."""
    if not password.strip():
        return "must not be only spaces"
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    folded = password.casefold()
    # Stripped too: "password " is as guessable as "password".
    candidates = {folded, folded.strip()}
    if candidates & common_passwords():
        return ("is one of the most common passwords, which attackers try first; "
                "a few unrelated words make a strong one")
    own = {email.strip().casefold(), name.strip().casefold(),
           email.strip().casefold().partition("@")[0]} - {""}
    if candidates & own:
        return "must not be your email or your name"
    return None
