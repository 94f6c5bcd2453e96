"""Conversations (`session` workloads), seen from the control plane.

A visitor never holds an account: whoever opens a session (the organization's widget backend,
with an API key) gets a short-lived token signed by the control plane, naming the organization
and the session workload. The visitor's socket presents it; the worker running the workload
connects its own socket with its worker token; the realtime process relays between the two
(`inference.consumers`). Each answered or handed-off question becomes an `Interaction`.

The knowledge a conversation answers from belongs to other packages (avatars' knowledge base,
attached to a digital employee), so inference asks a provider named in the settings
(`INFERENCE_KNOWLEDGE_PROVIDER`) instead of importing them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from inference import signals
from inference.models import (
    FINAL_STATES,
    ON_WORKER_STATES,
    Interaction,
    InteractionOutcome,
    Workload,
    WorkloadKind,
)
from tenants.models import Organization

TOKEN_SALT = "ironbowl.inference.session"  # noqa: S105 - a namespace, not a secret
SOCKET_PATH = "/ws/sessions/"
MAX_ANSWER_CHARS = 5000
MAX_QUESTION_CHARS = 1000


class InvalidToken(Exception):
    """The token is forged, for another purpose, expired, or its session is over."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Ticket:
    """What the opener hands to the visitor's browser."""

    token: str
    expires_at: dt.datetime
    socket_path: str = SOCKET_PATH


def issue_token(workload: Workload) -> Ticket:
    if workload.kind != WorkloadKind.SESSION:
        raise ValueError("session tokens are only for session workloads")
    payload = {"o": str(workload.organization_id), "w": str(workload.pk)}
    token = signing.dumps(payload, salt=TOKEN_SALT, compress=False)
    ttl = dt.timedelta(seconds=settings.INFERENCE_SESSION_TOKEN_TTL_S)
    return Ticket(token=token, expires_at=timezone.now() + ttl)


def workload_of_token(token: object) -> Workload:
    """The session workload a visitor's token opens. Every refusal reads the same for a forged
    token and for another organization's workload: the token names nothing it can prove."""
    if not isinstance(token, str) or not token or len(token) > 500:
        raise InvalidToken("invalid_token", "This conversation link is not valid.")
    try:
        payload = signing.loads(
            token, salt=TOKEN_SALT, max_age=settings.INFERENCE_SESSION_TOKEN_TTL_S
        )
    except signing.SignatureExpired:
        raise InvalidToken(
            "token_expired", "This conversation link has expired; open the conversation again."
        ) from None
    except signing.BadSignature:
        raise InvalidToken("invalid_token", "This conversation link is not valid.") from None
    organization = Organization.objects.filter(pk=payload.get("o")).first()
    workload = None
    if organization is not None:
        workload = (
            Workload.objects.for_organization(organization)
            .filter(pk=payload.get("w"), kind=WorkloadKind.SESSION)
            .first()
        )
    if workload is None:
        raise InvalidToken("invalid_token", "This conversation link is not valid.")
    if workload.state in FINAL_STATES:
        raise InvalidToken("session_over", "This conversation has ended; start a new one.")
    return workload


def session_of_worker(worker_id: object, workload_id: object, attempt: object) -> Workload | None:
    """The session workload this worker runs as this attempt, or None (not its workload, moved
    elsewhere since, or over)."""
    try:
        attempt_number = int(str(attempt))
        workload_uuid = uuid.UUID(str(workload_id))
    except ValueError:
        return None
    return (
        Workload.objects.unscoped_dangerously()  # the worker is authenticated by its own token
        .filter(
            pk=workload_uuid,
            worker_id=str(worker_id),
            attempts=attempt_number,
            kind=WorkloadKind.SESSION,
            state__in=ON_WORKER_STATES,
        )
        .select_related("organization")
        .first()
    )


def knowledge_of(workload: Workload) -> dict[str, Any]:
    """The entries a session answers from, as the worker's pipeline reads them, with a version
    (a digest of the entries) so that workers can share one index per version."""
    provider: Callable[[Organization, dict[str, Any]], list[dict[str, Any]]]
    provider = import_string(settings.INFERENCE_KNOWLEDGE_PROVIDER)
    entries = provider(workload.organization, workload.spec)
    digest = hashlib.sha256(
        json.dumps(entries, ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()[:16]
    return {"version": digest, "entries": entries}


def record_interaction(
    workload: Workload,
    *,
    question_id: str,
    question: str,
    answer: dict[str, Any],
    asked_at: dt.datetime,
    latency_ms: int,
) -> Interaction | None:
    """Record one exchange once (a relay that retries records nothing twice); returns the new
    interaction, or None when it was recorded before."""
    handed_off = bool(answer.get("handed_off"))
    outcome = InteractionOutcome.HANDED_OFF if handed_off else InteractionOutcome.ANSWERED
    try:
        with transaction.atomic():
            interaction = Interaction.objects.create(
                organization_id=workload.organization_id,
                workload=workload,
                question_id=question_id[:64],
                question=question[:MAX_QUESTION_CHARS],
                language=str(answer.get("language") or "")[:8],
                outcome=outcome,
                answer=str(answer.get("text") or "")[:MAX_ANSWER_CHARS],
                entry_id=str(answer.get("entry_id") or "")[:64],
                score=_number(answer.get("score")),
                matched_by=str(answer.get("matched_by") or "")[:10],
                rephrased=bool(answer.get("rephrased")),
                reason=str(answer.get("reason") or "")[:500],
                latency_ms=max(0, int(latency_ms)),
                asked_at=asked_at,
            )
    except IntegrityError:
        return None
    signals.announce_interaction(interaction)
    return interaction


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
