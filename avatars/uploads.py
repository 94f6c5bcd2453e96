"""Resumable chunked uploads: start one, send chunks at the offset it has reached, complete it.

The bytes live in MEDIA_ROOT/uploads/{organization}/{upload}. A client sends each chunk with
`Content-Range: bytes START-END/TOTAL`; a dropped connection loses at most the chunk in flight:
the client reads `received` and resumes there. A chunk sent again (the answer was lost) is
accepted without being written twice; a chunk that would leave a gap is refused with the offset
to resume from.

Completing checks the size and the SHA-256, then the content for its purpose (footage: duration,
resolution, sound, frame rate). A checksum that does not match fails the upload for good and
frees its bytes: the server cannot tell which chunk was damaged, so resuming could not repair it;
the client starts a new upload. A checksum that contradicts the one given at the start (the
client contradicts itself) changes nothing, and neither does completing before every byte arrived.
Completing reads the whole file once (SHA-256) in the request; footage is probed, not decoded.
An upload still receiving a week after it started is given up (`purge_abandoned_uploads`, the
daily beat task of that name): failed, its bytes deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars import footage
from avatars.models import Upload, UploadPurpose, UploadStatus
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_READ_BLOCK = 1024 * 1024
REASON_MAX_LENGTH = 300
# An upload that has not completed this long after it started was abandoned: resuming even 500 MB
# over a poor connection takes hours, not days.
ABANDONED_AFTER = dt.timedelta(days=7)

# Files whose first bytes say what they are; checked on completion.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/pdf": (b"%PDF-",),
}


@dataclasses.dataclass(frozen=True)
class PurposeLimits:
    max_bytes: int
    types: dict[str, list[str]]  # content type → allowed file extensions


def limits_of(purpose: str) -> PurposeLimits:
    config: dict[str, Any] = settings.UPLOAD_LIMITS[purpose]
    return PurposeLimits(max_bytes=config["max_bytes"], types=config["types"])


def path_of(upload: Upload) -> Path:
    """Where the upload's bytes are stored."""
    return Path(settings.MEDIA_ROOT) / upload.relative_path


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


def _purpose_label(purpose: str) -> str:
    return str(UploadPurpose(purpose).label)


def _check_file(purpose: str, filename: str, content_type: str, size: int) -> None:
    limits = limits_of(purpose)
    if content_type not in limits.types:
        raise DomainError(
            "content_type_not_allowed",
            _("%(purpose)s must be one of %(allowed)s; this file is %(type)s.")
            % {
                "purpose": _purpose_label(purpose),
                "allowed": ", ".join(sorted(limits.types)),
                "type": content_type,
            },
            field="content_type",
        )
    extensions = limits.types[content_type]
    if not filename.lower().endswith(tuple(extensions)):
        raise DomainError(
            "extension_mismatch",
            _("A %(type)s file's name ends in %(extensions)s; %(filename)s does not.")
            % {"type": content_type, "extensions": " or ".join(extensions), "filename": filename},
            field="filename",
        )
    if size < 1:
        raise DomainError("empty_file", _("The file is empty."), field="size")
    if size > limits.max_bytes:
        raise DomainError(
            "file_too_large",
            _("The file is %(size)s MB; %(purpose)s may be at most %(max)s MB.")
            % {
                "size": _megabytes(size),
                "purpose": _purpose_label(purpose).lower(),
                "max": _megabytes(limits.max_bytes),
            },
            field="size",
        )


def _clean_sha256(value: str | None, field: str = "sha256") -> str:
    value = (value or "").strip().lower()
    if value and not _SHA256.match(value):
        raise DomainError(
            "invalid_sha256",
            _("A SHA-256 checksum is 64 hexadecimal characters."),
            field=field,
        )
    return value


@transaction.atomic
def start_upload(
    actor: Actor,
    organization: Organization,
    *,
    purpose: str,
    filename: str,
    content_type: str,
    size: int,
    sha256: str = "",
) -> Upload:
    """A new, empty upload; the client then sends its chunks."""
    filename = Path(filename.replace("\\", "/")).name  # no directories from the client's side
    content_type = content_type.strip().lower()
    _check_file(purpose, filename, content_type, size)
    upload = Upload.objects.create(
        organization=organization,
        purpose=purpose,
        filename=filename,
        content_type=content_type,
        size=size,
        sha256=_clean_sha256(sha256),
        created_by=actor.user,
    )
    path = path_of(upload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    audit.record(actor, organization, "upload.create", upload, after=audit.snapshot(upload))
    return upload


@dataclasses.dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive, as in HTTP
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(header: str | None) -> ContentRange:
    match = _CONTENT_RANGE.match((header or "").strip())
    if match is None:
        raise DomainError(
            "content_range_required",
            _(
                "Send each chunk with a Content-Range header such as "
                "'bytes 0-8388607/52428800' (first byte, last byte, total size)."
            ),
        )
    start, end, total = (int(group) for group in match.groups())
    if start > end or end >= total:
        raise DomainError(
            "content_range_invalid",
            _("Content-Range 'bytes %(start)d-%(end)d/%(total)d' is not a range of the file.")
            % {"start": start, "end": end, "total": total},
        )
    return ContentRange(start, end, total)


def _lock(upload: Upload) -> Upload:
    return (
        Upload.objects.for_organization(upload.organization).select_for_update().get(pk=upload.pk)
    )


def _refuse_unless_receiving(upload: Upload) -> None:
    if upload.status == UploadStatus.COMPLETE:
        raise ConflictError(
            "upload_complete", _("This upload is complete; it takes no more bytes.")
        )
    if upload.status == UploadStatus.FAILED:
        raise ConflictError(
            "upload_failed",
            _("This upload failed (%(reason)s); start a new upload.")
            % {"reason": upload.failure_reason},
        )


def _write_at(path: Path, offset: int, data: memoryview) -> None:
    """Write `data` at `offset` and cut the file there: bytes past `received`, left by a request
    that died before its transaction committed, are overwritten rather than kept."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        os.lseek(descriptor, offset, os.SEEK_SET)
        while data:
            written = os.write(descriptor, data)
            data = data[written:]
        os.ftruncate(descriptor, os.lseek(descriptor, 0, os.SEEK_CUR))
    finally:
        os.close(descriptor)


def receive_chunk(upload: Upload, content_range: ContentRange, data: bytes) -> Upload:
    """Store a chunk that starts at or before the upload's `received` offset.

    The caller has read the chunk (at most UPLOAD_CHUNK_MAX_BYTES) before this takes the row lock,
    so a slow client never holds a database lock while its bytes trickle in. Concurrent chunks of
    one upload are serialised by the lock; the one that arrives second sees the offset the first
    left.
    """
    if content_range.total != upload.size:
        raise DomainError(
            "content_range_total_mismatch",
            _("Content-Range says the file has %(total)d bytes; this upload is for %(size)d.")
            % {"total": content_range.total, "size": upload.size},
        )
    if len(data) != content_range.length:
        raise DomainError(
            "chunk_length_mismatch",
            _("The chunk has %(length)d bytes; its Content-Range announces %(expected)d.")
            % {"length": len(data), "expected": content_range.length},
        )
    with transaction.atomic():
        upload = _lock(upload)
        _refuse_unless_receiving(upload)
        if content_range.start > upload.received:
            raise ConflictError(
                "upload_offset_mismatch",
                _(
                    "This upload has %(received)d bytes so far; send the chunk that starts at "
                    "byte %(received)d."
                )
                % {"received": upload.received},
            )
        if content_range.end >= upload.received:  # else: all of it arrived before, a retry
            skip = upload.received - content_range.start
            path = path_of(upload)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_at(path, upload.received, memoryview(data)[skip:])
            upload.received = content_range.end + 1
            upload.save(update_fields=["received"])
    return upload


def _sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while block := stream.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _content_problems(upload: Upload, path: Path) -> tuple[list[str], dict[str, Any] | None]:
    """Whether the content is what its purpose needs: (problems, measured media info)."""
    if upload.purpose in (UploadPurpose.FOOTAGE, UploadPurpose.CONSENT_CLIP):
        try:
            info = footage.probe(path)
        except footage.NotMedia as error:
            kind = (
                _("a video")
                if upload.purpose == UploadPurpose.FOOTAGE
                else _("a video or audio file")
            )
            return [
                _("This file is not %(kind)s we can read (%(error)s).")
                % {"kind": kind, "error": error}
            ], None
        if upload.purpose == UploadPurpose.FOOTAGE:
            return footage.footage_problems(info), info.as_dict()
        return footage.consent_clip_problems(info), info.as_dict()
    signatures = _SIGNATURES.get(upload.content_type)
    if signatures:
        with path.open("rb") as stream:
            head = stream.read(16)
        if not head.startswith(signatures):
            return [
                _("This file is not %(type)s: its content does not start like one.")
                % {"type": upload.content_type}
            ], None
    return [], None


@transaction.atomic
def _finish(
    actor: Actor,
    upload: Upload,
    *,
    sha256: str,
    problems: list[str],
    media_info: dict[str, Any] | None,
) -> Upload:
    upload = _lock(upload)
    if upload.status != UploadStatus.RECEIVING:
        return upload  # a concurrent completion got there first
    before = audit.snapshot(upload)
    upload.media_info = media_info if media_info is None else {**media_info, "problems": problems}
    upload.completed_at = timezone.now()
    if problems:
        upload.status = UploadStatus.FAILED
        reason = " ".join(problems)
        upload.failure_reason = (
            reason if len(reason) <= REASON_MAX_LENGTH else reason[: REASON_MAX_LENGTH - 1] + "…"
        )
        path_of(upload).unlink(missing_ok=True)
        action = "upload.fail"
    else:
        upload.status = UploadStatus.COMPLETE
        upload.sha256 = sha256
        action = "upload.complete"
    upload.save(update_fields=["status", "sha256", "failure_reason", "media_info", "completed_at"])
    audit.record(
        actor, upload.organization, action, upload, before=before, after=audit.snapshot(upload)
    )
    return upload


def complete_upload(actor: Actor, upload: Upload, sha256: str | None = None) -> Upload:
    """Check the size, the checksum and the content; the upload is then complete or failed.

    A failed check raises DomainError after the failure is stored (GET shows the reason).
    """
    sent = _clean_sha256(sha256)
    upload = Upload.objects.for_organization(upload.organization).get(pk=upload.pk)
    if upload.status == UploadStatus.COMPLETE:
        if sent and sent != upload.sha256:
            raise DomainError(
                "checksum_mismatch",
                _("This upload is complete and its SHA-256 is %(actual)s, not %(sent)s.")
                % {"actual": upload.sha256, "sent": sent},
                field="sha256",
            )
        return upload  # completing again (the first answer was lost) changes nothing
    _refuse_unless_receiving(upload)
    if sent and upload.sha256 and sent != upload.sha256:
        raise DomainError(
            "checksum_conflict",
            _(
                "This checksum differs from the one given when the upload started "
                "(%(started)s); nothing was changed."
            )
            % {"started": upload.sha256},
            field="sha256",
        )
    expected = sent or upload.sha256
    if not expected:
        raise DomainError(
            "sha256_required",
            _("Send the file's SHA-256 checksum to complete the upload."),
            field="sha256",
        )
    if upload.received < upload.size:
        raise ConflictError(
            "upload_incomplete",
            _(
                "%(received)d of %(size)d bytes have arrived; send the rest, starting at byte "
                "%(received)d, then complete the upload."
            )
            % {"received": upload.received, "size": upload.size},
        )
    # No more bytes can arrive (received == size), so the file is read without a lock held.
    path = path_of(upload)
    try:
        actual, stored = _sha256_of(path)
    except FileNotFoundError:
        # A concurrent completion failed the upload and dropped its bytes meanwhile.
        _refuse_unless_receiving(
            Upload.objects.for_organization(upload.organization).get(pk=upload.pk)
        )
        raise
    if stored != upload.size:
        problems = [
            _("The stored file has %(stored)d bytes instead of %(size)d; start a new upload.")
            % {"stored": stored, "size": upload.size}
        ]
        code, media_info = "upload_damaged", None
    elif actual != expected:
        problems = [
            _(
                "The file that arrived has SHA-256 %(actual)s, not %(expected)s: some bytes were "
                "damaged on the way. Start a new upload."
            )
            % {"actual": actual, "expected": expected}
        ]
        code, media_info = "checksum_mismatch", None
    else:
        problems, media_info = _content_problems(upload, path)
        code = "invalid_footage" if upload.purpose == UploadPurpose.FOOTAGE else "invalid_file"
    upload = _finish(actor, upload, sha256=actual, problems=problems, media_info=media_info)
    if upload.status == UploadStatus.FAILED and problems:
        # The failure is stored (committed) first, so that the upload shows why; then refused.
        raise DomainError(code, " ".join(problems))
    return upload


def purge_abandoned_uploads(now: dt.datetime | None = None) -> int:
    """Give up every upload still receiving ABANDONED_AFTER after it started: it is failed with a
    reason a person can read, and its bytes are deleted. Returns how many it gave up.

    A client that never comes back to resume would otherwise keep a partial file on disk for
    good. Measured from the start (an upload keeps no time of its last chunk). Cross-tenant:
    uploads of every organization are looked at; each is failed in its own transaction, under its
    lock, after checking again that it is still receiving; its file goes once that commits.
    """
    now = now or timezone.now()
    cutoff = now - ABANDONED_AFTER
    abandoned = (
        Upload.objects.unscoped_dangerously()
        .filter(status=UploadStatus.RECEIVING, created_at__lt=cutoff)
        .values_list("organization_id", "pk")
    )
    purged = 0
    for organization_id, upload_id in list(abandoned):
        organization = Organization.objects.get(pk=organization_id)
        with transaction.atomic(), translation.override(organization.locale):
            upload = (
                Upload.objects.for_organization(organization)
                .select_for_update()
                .filter(pk=upload_id, status=UploadStatus.RECEIVING)
                .first()
            )
            if upload is None:
                continue  # completed or failed meanwhile
            before = audit.snapshot(upload)
            upload.status = UploadStatus.FAILED
            upload.failure_reason = _(
                "Abandoned: %(received)d of %(size)d bytes had arrived %(days)d days after the "
                "upload started, so its bytes were deleted. Start a new upload."
            ) % {
                "received": upload.received,
                "size": upload.size,
                "days": ABANDONED_AFTER.days,
            }
            upload.completed_at = timezone.now()
            upload.save(update_fields=["status", "failure_reason", "completed_at"])
            audit.record(
                SYSTEM,
                organization,
                "upload.purge",
                upload,
                before=before,
                after=audit.snapshot(upload),
            )
            transaction.on_commit(functools.partial(path_of(upload).unlink, missing_ok=True))
            purged += 1
    return purged
