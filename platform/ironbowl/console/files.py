"""Files the console sends itself: an avatar version's portrait, for pages that already checked
the member may see it."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpResponse

from avatars import catalog
from avatars.models import AvatarVersion


def portrait_response(version: AvatarVersion | None, missing: Any) -> HttpResponse:
    """The version's portrait PNG; 404 with `missing` (the page's words) when it has none.

    A portrait is one small PNG (a frame a build chose), so it is read whole, not streamed; it is
    the organization's members', so only a private (browser) cache may keep it."""
    portrait = catalog.portrait_file(version)
    if portrait is None:
        raise Http404(missing)
    response = HttpResponse(portrait.read_bytes(), content_type="image/png")
    response["Cache-Control"] = "private"
    return response
