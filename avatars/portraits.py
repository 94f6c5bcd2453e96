"""An avatar version's portrait as a workload input: what sessions, shifts and samples send to
the worker (which shares no disk with the control plane and fetches it)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from avatars import catalog
from avatars.models import AvatarVersion
from inference import artifacts
from inference.worker.artifacts import file_sha256
from tenants.models import Organization

PORTRAITS_FOLDER = "portraits"  # MEDIA_ROOT/portraits/<organization>/: market avatars' portraits


def portrait_input(organization: Organization, version: AvatarVersion) -> dict[str, Any] | None:
    """The version's portrait as an input of the organization's workload (the worker fetches it:
    it shares no disk with the control plane), or None when none is stored. Inputs are served
    from the workload's own organization's media only, so a market avatar's portrait, kept in its
    vendor's, is copied into the organization's, once per content."""
    path = catalog.portrait_file(version)
    if path is None:
        return None
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    root = Path(settings.MEDIA_ROOT).resolve()
    relative = path.relative_to(root).as_posix()
    if relative.split("/")[1:2] != [str(organization.pk)]:
        relative = f"{PORTRAITS_FOLDER}/{organization.pk}/{digest}{path.suffix}"
        copy = root / relative
        if not copy.is_file() or file_sha256(copy) != digest:
            copy.parent.mkdir(parents=True, exist_ok=True)
            partial = copy.with_name(f".{copy.name}.{uuid.uuid4().hex}.partial")
            try:
                partial.write_bytes(data)
                partial.replace(copy)
            finally:
                partial.unlink(missing_ok=True)
    return artifacts.media_input(relative, sha256=digest, size=len(data))
