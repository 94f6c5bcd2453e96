"""Secrets shown once: API keys and invitation tokens. Only a SHA-256 digest is stored.

The secrets carry 256 bits of randomness, so a fast digest is enough; a slow password hash
would only cost every API request time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

API_KEY_MARK = "ib_"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)


def new_api_key() -> tuple[str, str]:
    """Return (token, prefix). The prefix is public and identifies the key in lists and logs."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(10))
    return f"{API_KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_prefix(token: str) -> str | None:
    if not token.startswith(API_KEY_MARK):
        return None
    prefix, sep, secret = token[len(API_KEY_MARK) :].partition("_")
    if not sep or len(prefix) != 10 or not secret:
        return None
    return prefix


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)
