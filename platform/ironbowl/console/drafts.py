"""What a person typed when their session had expired, kept for the page they come back to.

A POST that arrives signed out is not acted on; its fields (never passwords, secrets, tokens or
files) are kept in the new session for that page, and the page shows them again after sign-in.
Signing in keeps the session's data (Django cycles the key), so the draft survives it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest

SESSION_KEY = "console.drafts"
# Never kept: what a person must type again on purpose, and per-form tokens.
_NEVER = ("password", "secret", "stream_key", "token", "csrfmiddlewaretoken")
MAX_DRAFTS = 5
MAX_VALUE = 10_000


def _kept(name: str) -> bool:
    return not any(word in name for word in _NEVER)


def keep(request: HttpRequest, page: str) -> None:
    fields: dict[str, Any] = {}
    for name in request.POST:
        if not _kept(name):
            continue
        values = [v[:MAX_VALUE] for v in request.POST.getlist(name)]
        fields[name] = values if len(values) > 1 else values[0]
    if not fields:
        return
    stored = dict(request.session.get(SESSION_KEY, {}))
    stored[urlsplit(page).path] = fields
    request.session[SESSION_KEY] = dict(list(stored.items())[-MAX_DRAFTS:])


def take(request: HttpRequest, path: str) -> dict[str, Any] | None:
    """The draft kept for this page, once: it is forgotten when shown."""
    stored = request.session.get(SESSION_KEY)
    if not stored or path not in stored:
        return None
    stored = dict(stored)
    draft = stored.pop(path)
    request.session[SESSION_KEY] = stored
    return draft  # type: ignore[no-any-return]
