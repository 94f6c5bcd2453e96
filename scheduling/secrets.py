"""Live rooms' stream keys, encrypted at rest with Fernet (AES-128-CBC with HMAC-SHA256).

Which key: `STREAM_KEY_ENCRYPTION_KEY` (a Fernet key) when it is set; otherwise one derived from
`SECRET_KEY` with HKDF-SHA256 under a label of its own, so that no other use of `SECRET_KEY` yields
it. A dedicated key lets `SECRET_KEY` be rotated without touching stream keys.

Rotation: the first key encrypts; every other known key still decrypts (the keys listed in
`STREAM_KEY_ENCRYPTION_KEY_FALLBACKS`, and the keys derived from `SECRET_KEY` and
`SECRET_KEY_FALLBACKS`), until `manage.py rotate_stream_keys` has re-encrypted every station's
stream key with the first one. docs/operations.md, "Stream key encryption", has the steps.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from inference import spec_secrets
from scheduling.models import Station
from tenants.errors import ConflictError
from tenants.models import Organization

HKDF_INFO = b"ironbowl.scheduling.stream-key.v1"
# Responses show the last characters of a saved key, so that a person can tell which one it is;
# a short key shows nothing (four characters of eight would give half of it away).
HINT_CHARS = 4
HINT_MIN_LENGTH = 12


class StreamKeyUnreadable(ConflictError):
    """A saved stream key none of the configured keys can decrypt (a lost or wrong key)."""

    def __init__(self) -> None:
        super().__init__(
            "stream_key_unreadable",
            _(
                "This station's stream key cannot be decrypted with the configured encryption "
                "keys. Enter the stream key again, or restore the key it was saved with "
                "(STREAM_KEY_ENCRYPTION_KEY_FALLBACKS)."
            ),
            field="stream_key",
        )


def derived_key(secret: str) -> bytes:
    """The Fernet key derived from a Django secret key."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def _keys() -> list[bytes]:
    derived = [derived_key(settings.SECRET_KEY)]
    derived += [derived_key(old) for old in getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    fallbacks = [key.encode() for key in settings.STREAM_KEY_ENCRYPTION_KEY_FALLBACKS]
    if settings.STREAM_KEY_ENCRYPTION_KEY:
        return [settings.STREAM_KEY_ENCRYPTION_KEY.encode(), *fallbacks, *derived]
    return [*derived, *fallbacks]


def _fernet() -> MultiFernet:
    # Built per call (cheap): settings may change under tests and between rotations.
    return MultiFernet([Fernet(key) for key in _keys()])


def encrypt(stream_key: str) -> str:
    return _fernet().encrypt(stream_key.encode()).decode()


def decrypt(token: str) -> str:
    """The stream key in `token`; StreamKeyUnreadable when no configured key opens it."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise StreamKeyUnreadable() from None


def is_current(token: str) -> bool:
    """Whether `token` is encrypted with the key that encrypts now (nothing to rotate)."""
    try:
        Fernet(_keys()[0]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """`token` encrypted again with the current key; StreamKeyUnreadable as for decrypt."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise StreamKeyUnreadable() from None


def hint(stream_key: str) -> str:
    return stream_key[-HINT_CHARS:] if len(stream_key) >= HINT_MIN_LENGTH else ""


RTMP_REFERENCE = "station-rtmp"


def rtmp_reference(station: Station) -> dict[str, str] | None:
    """How a workload's spec names the station's RTMP destination without holding the key; None
    when the station has no push URL and key."""
    if not station.push_url or not station.stream_key_encrypted:
        return None
    return spec_secrets.reference(f"{RTMP_REFERENCE}:{station.pk}")


def resolve_reference(organization: Organization, name: str) -> str:
    """The value behind a spec's reference (inference's `INFERENCE_SECRET_PROVIDER`), for the
    worker's assignment only. LookupError with what to do when it cannot be had."""
    kind, _sep, station_id = name.partition(":")
    station = None
    if kind == RTMP_REFERENCE:
        try:
            station = Station.objects.for_organization(organization).filter(pk=station_id).first()
        except ValidationError:
            station = None
    if station is None:
        raise LookupError(f"The credential {name!r} names no station of this organization.")
    try:
        url = rtmp_url_of(station)
    except StreamKeyUnreadable as unreadable:
        raise LookupError(str(unreadable)) from None
    if url is None:
        raise LookupError(
            f"The live room {station.name!r} has no push URL and stream key any more; set them."
        )
    return url


def rtmp_url_of(station: Station) -> str | None:
    """Where a live room's stream goes: its push URL and its stream key, or None without both.

    The result holds the credential in clear: hand it to the worker only, never to a response,
    an audit entry or a log line."""
    if not station.push_url or not station.stream_key_encrypted:
        return None
    return f"{station.push_url}/{decrypt(station.stream_key_encrypted)}"
