"""Files that move between the control plane and workers, which share no file system with it.

Inputs: a workload's spec names them under `inputs` (`media_input`: a file under MEDIA_ROOT of
the workload's own organization, with its SHA-256 and size); the worker the workload is placed
on downloads them. Outputs: that worker uploads files by name for its attempt; they are kept in
MEDIA_ROOT/inference/<organization>/<workload>/<attempt>/ until the workload's consumer takes
them (`output_file`) and lets them go (`discard_outputs`).

Only the worker a workload is placed on, for its current attempt and while the workload runs,
may move its files: another organization's workload, or one never given to this worker, is "not
found"; an attempt the workload has moved on from is a conflict (the worker stops). Uploading an
output again replaces it whole, so a worker's retry is harmless.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _

from inference.contracts import SHA256_HEADER
from inference.models import ON_WORKER_STATES, Worker, Workload, WorkloadEvent, WorkloadState
from inference.worker.artifacts import file_sha256
from tenants.errors import ConflictError, DomainError

OUTPUTS_FOLDER = "inference"
OUTPUT_MAX_BYTES = 64 * 1024 * 1024  # one output file; a bundle part is a few megabytes
OUTPUTS_PER_ATTEMPT = 16
NAME_MAX_LENGTH = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1 << 20


class NotFoundError(DomainError):
    status_code = 404


class TooLargeError(DomainError):
    status_code = 413


def media_input(path: str, *, sha256: str, size: int) -> dict[str, Any]:
    """How a spec names an input: a MEDIA_ROOT path (`<area>/<organization id>/…`), with the
    SHA-256 and size the worker checks its download against."""
    return {"media": path, "sha256": sha256, "bytes": size}


def attempt_on_worker(worker: Worker, workload_id: Any, attempt: int) -> Workload:
    """The workload, if it runs on this worker as this attempt; otherwise a 404 (not this
    worker's, or another organization's) or a 409 (this worker had it, but it moved on)."""
    workload = (
        Workload.objects.for_organization(worker.organization)
        .select_related("organization")
        .filter(pk=workload_id)
        .first()
    )
    if workload is None or not _ever_on(worker, workload):
        raise NotFoundError(
            "workload_not_found",
            _("No workload %(id)s was given to this worker.") % {"id": workload_id},
        )
    if not _current(worker, workload, attempt):
        raise ConflictError(
            "stale_attempt",
            _(
                "Workload %(id)s has moved on from attempt %(attempt)s on this worker (it is "
                "%(state)s, attempt %(current)s); stop working on it."
            )
            % {
                "id": workload_id,
                "attempt": attempt,
                "state": workload.state,
                "current": workload.attempts,
            },
        )
    return workload


def input_file(workload: Workload, name: str) -> Path:
    """The stored file of the workload's input `name`; 404 when the spec names none or the file
    is not (or no longer) stored."""
    inputs = workload.spec.get("inputs")
    entry = inputs.get(name) if isinstance(inputs, dict) else None
    media = entry.get("media") if isinstance(entry, dict) else None
    path = _organization_file(workload, media) if isinstance(media, str) else None
    if path is None:
        raise NotFoundError(
            "input_not_found",
            _("Workload %(id)s has no stored input named %(name)s.")
            % {"id": workload.pk, "name": name},
        )
    return path


def store_output(
    worker: Worker,
    workload: Workload,
    attempt: int,
    name: str,
    body: IO[bytes] | None,
    length: int,
    sha256: str,
) -> dict[str, Any]:
    """Store `length` bytes read from `body` as output `name` of this attempt, replacing any
    earlier upload of it; refused whole (nothing stored) when the name, the size or the SHA-256
    is wrong, or when the workload moved on meanwhile."""
    if len(name) > NAME_MAX_LENGTH or not _NAME.match(name):
        raise DomainError(
            "invalid_name",
            _(
                "An output name is letters, digits, '-' and '_', with dots between parts "
                "(portrait.png), at most %(max)d characters."
            )
            % {"max": NAME_MAX_LENGTH},
        )
    if not _SHA256.match(sha256):
        raise DomainError(
            "sha256_required",
            _("Send the output's SHA-256 (64 lower-case hex digits) in the %(header)s header.")
            % {"header": SHA256_HEADER},
        )
    if length > OUTPUT_MAX_BYTES:
        raise TooLargeError(
            "output_too_large",
            _("The output is %(size)d bytes; an output may be at most %(max)d bytes.")
            % {"size": length, "max": OUTPUT_MAX_BYTES},
        )
    folder = _attempt_folder(workload, attempt)
    folder.mkdir(parents=True, exist_ok=True)
    others = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != name]
    if len(others) >= OUTPUTS_PER_ATTEMPT:
        raise DomainError(
            "too_many_outputs",
            _("An attempt may deliver at most %(max)d outputs.") % {"max": OUTPUTS_PER_ATTEMPT},
        )
    partial = folder / f".{name}.{uuid.uuid4().hex}.partial"
    try:
        digest, received = _receive(body, length, partial)
        if received != length:
            raise DomainError(
                "incomplete_output",
                _("Only %(received)d of the %(length)d announced bytes arrived; send it again.")
                % {"received": received, "length": length},
            )
        if digest != sha256:
            raise DomainError(
                "sha256_mismatch",
                _("The bytes that arrived do not have the SHA-256 sent with them; send it again."),
            )
        # Checked again after the transfer: a cancel that landed meanwhile wins.
        attempt_on_worker(worker, workload.pk, attempt)
        os.replace(partial, folder / name)
    finally:
        partial.unlink(missing_ok=True)
    return {"name": name, "sha256": digest, "bytes": received}


def output_file(workload: Workload, name: str, sha256: str) -> Path | None:
    """The output `name` that the workload's last attempt delivered, if it is stored with this
    SHA-256 (as the worker's result says); None otherwise."""
    if len(name) > NAME_MAX_LENGTH or not _NAME.match(name):
        return None
    path = _attempt_folder(workload, workload.attempts) / name
    if not path.is_file() or file_sha256(path) != sha256:
        return None
    return path


def discard_outputs(workload: Workload) -> None:
    """Delete every output of the workload, of every attempt (its consumer has taken them)."""
    shutil.rmtree(_workload_folder(workload), ignore_errors=True)


def _ever_on(worker: Worker, workload: Workload) -> bool:
    if workload.worker_id == worker.pk:
        return True
    return (
        WorkloadEvent.objects.for_organization(worker.organization)
        .filter(workload=workload, state=WorkloadState.PLACED, worker=worker)
        .exists()
    )


def _current(worker: Worker, workload: Workload, attempt: int) -> bool:
    return (
        workload.worker_id == worker.pk
        and workload.attempts == attempt
        and workload.state in ON_WORKER_STATES
    )


def _organization_file(workload: Workload, media: str) -> Path | None:
    """`media` under MEDIA_ROOT, if it is a file of the workload's organization (paths are
    `<area>/<organization id>/…`); a path that leads elsewhere is treated as missing."""
    parts = PurePosixPath(media).parts
    if len(parts) < 3 or parts[1] != str(workload.organization_id) or ".." in parts:
        return None
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / media).resolve()
    if not path.is_relative_to(root / parts[0] / parts[1]) or not path.is_file():
        return None
    return path


def _workload_folder(workload: Workload) -> Path:
    return (
        Path(settings.MEDIA_ROOT)
        / OUTPUTS_FOLDER
        / str(workload.organization_id)
        / str(workload.pk)
    )


def _attempt_folder(workload: Workload, attempt: int) -> Path:
    return _workload_folder(workload) / str(attempt)


def _receive(body: IO[bytes] | None, length: int, target: Path) -> tuple[str, int]:
    """Copy at most `length` bytes of `body` into `target`; their SHA-256 and how many came."""
    digest, received = hashlib.sha256(), 0
    with target.open("wb") as out:
        while body is not None and received < length:
            block = body.read(min(_BLOCK, length - received))
            if not block:
                break
            digest.update(block)
            out.write(block)
            received += len(block)
    return digest.hexdigest(), received
