"""Bearer tokens: random, shown once, stored only as a SHA-256 digest so a leaked table does
not hand out sessions. A fast hash is enough here: the token has 256 bits of entropy."""

from __future__ import annotations

import hashlib
import secrets

# Longer "tokens" are refused before hashing: ours are 43 characters.
MAX_TOKEN_LENGTH = 256


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
