"""Consent of the person filmed: recording it, revoking it, and enforcing its end.

A consent names who is filmed, their statement (text and a recorded clip), the scope of
organizations that may use the likeness, and an expiry. When it is revoked or expires, it is
enforced once (`enforced_at`): builds under it stop, and hires of versions built under it are
suspended with the reason, in whichever organization hired them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars import builds
from avatars.employments import clean_reason, suspend_employment
from avatars.models import (
    Avatar,
    Consent,
    ConsentScope,
    Employment,
    EmploymentStatus,
    Upload,
    UploadPurpose,
    UploadStatus,
)
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

SUSPENSION_REASON_MAX_LENGTH = 300


def _clip_problem(clip: Upload) -> str | None:
    if clip.purpose != UploadPurpose.CONSENT_CLIP:
        return _("This upload is a %(purpose)s; upload the recorded consent as a consent clip.") % {
            "purpose": str(UploadPurpose(clip.purpose).label).lower()
        }
    if clip.status == UploadStatus.FAILED:
        return _("This consent clip failed its checks: %(reason)s") % {
            "reason": clip.failure_reason
        }
    if clip.status != UploadStatus.COMPLETE:
        return _(
            "This consent clip has not finished uploading (%(received)d of %(size)d bytes)."
        ) % {"received": clip.received, "size": clip.size}
    return None


def _scope_organizations(scope: str, slugs: list[str]) -> list[Organization]:
    slugs = sorted(set(slugs))
    if scope != ConsentScope.LISTED:
        if slugs:
            raise DomainError(
                "scope_organizations_unused",
                _("List organizations only with the scope 'listed'."),
                field="scope_organizations",
            )
        return []
    if not slugs:
        raise DomainError(
            "scope_organizations_required",
            _("With the scope 'listed', name at least one organization (by its slug)."),
            field="scope_organizations",
        )
    found = list(Organization.objects.filter(slug__in=slugs))
    unknown = sorted(set(slugs) - {organization.slug for organization in found})
    if unknown:
        raise DomainError(
            "unknown_organization",
            _("No organization has the slug %(slugs)s.") % {"slugs": ", ".join(unknown)},
            field="scope_organizations",
        )
    return found


@transaction.atomic
def record_consent(
    actor: Actor,
    organization: Organization,
    *,
    avatar: Avatar,
    subject_name: str,
    statement: str,
    clip: Upload,
    scope: str,
    expires_at: dt.datetime,
    scope_organizations: list[str] | None = None,
) -> Consent:
    problem = _clip_problem(clip)
    if problem:
        raise DomainError("consent_clip_not_usable", problem, field="clip")
    if expires_at <= timezone.now():
        raise DomainError(
            "expiry_in_past", _("The expiry must be in the future."), field="expires_at"
        )
    listed = _scope_organizations(scope, scope_organizations or [])
    consent = Consent.objects.create(
        organization=organization,
        avatar=avatar,
        subject_name=subject_name.strip(),
        statement=statement.strip(),
        clip=clip,
        scope=scope,
        expires_at=expires_at,
    )
    consent.scope_organizations.set(listed)
    audit.record(
        actor,
        organization,
        "consent.create",
        consent,
        after={**audit.snapshot(consent), "scope_organizations": [o.slug for o in listed]},
    )
    return consent


@dataclasses.dataclass(frozen=True)
class Enforcement:
    builds_stopped: int
    employments_suspended: int


@transaction.atomic
def revoke_consent(actor: Actor, consent: Consent, reason: str) -> Consent:
    """The person withdrew their consent: record it and enforce it at once."""
    reason = clean_reason(
        reason, _("Say why the consent is revoked; the hires that are suspended show it.")
    )
    consent = (
        Consent.objects.for_organization(consent.organization)
        .select_for_update()
        .get(pk=consent.pk)
    )
    if consent.revoked_at is not None:
        raise ConflictError("consent_revoked", _("This consent has already been revoked."))
    before = audit.snapshot(consent)
    consent.revoked_at = timezone.now()
    consent.revoked_reason = reason
    consent.save(update_fields=["revoked_at", "revoked_reason"])
    audit.record_update(actor, consent.organization, "consent.revoke", consent, before=before)
    enforce_consent(actor, consent)
    return consent


def _end_reason(consent: Consent, avatar: Avatar) -> tuple[str, str]:
    """(code, reason) of a consent that no longer holds, as the hiring organizations read it."""
    if consent.revoked_at is not None:
        reason = _("The person filmed for %(avatar)s revoked their consent: %(reason)s") % {
            "avatar": str(avatar),
            "reason": consent.revoked_reason,
        }
        code = "consent_revoked"
    else:
        reason = _("The consent of the person filmed for %(avatar)s expired on %(date)s.") % {
            "avatar": str(avatar),
            "date": timezone.localdate(consent.expires_at).isoformat(),
        }
        code = "consent_expired"
    if len(reason) > SUSPENSION_REASON_MAX_LENGTH:
        reason = reason[: SUSPENSION_REASON_MAX_LENGTH - 1] + "…"
    return code, reason


def _employments_under(consent: Consent) -> list[Employment]:
    """Active hires of versions built under the consent, in every organization that hired them.

    Cross-tenant on purpose, and only here: a vendor's avatar is hired by institutions, and the
    filmed person's withdrawal must reach each of those hires. Nothing of the other organizations
    is shown to the consent's organization; each suspension is audited in the hire's own
    organization.
    """
    return list(
        Employment.objects.unscoped_dangerously()
        .filter(avatar_version__consent=consent, status=EmploymentStatus.ACTIVE)
        .select_related("organization")
        .order_by("organization_id", "created_at")
    )


def enforce_consent(actor: Actor, consent: Consent, at: dt.datetime | None = None) -> Enforcement:
    """Stop builds and suspend hires under a revoked or expired consent; once (`enforced_at`).

    Runs in the caller's transaction, with the consent row locked by the caller.
    """
    if consent.enforced_at is not None or consent.is_valid(at):
        return Enforcement(0, 0)
    avatar = Avatar.objects.for_organization(consent.organization).get(pk=consent.avatar_id)
    code, reason = _end_reason(consent, avatar)
    stopped = builds.stop_builds_under_consent(actor, consent, code, reason)
    suspended = 0
    for employment in _employments_under(consent):
        # Another organization's audit log names the system, not a person of the vendor.
        who = actor if employment.organization_id == consent.organization_id else SYSTEM
        suspended += suspend_employment(who, employment, reason)
    consent.enforced_at = timezone.now()
    consent.save(update_fields=["enforced_at"])
    audit.record(
        actor,
        consent.organization,
        "consent.enforce",
        consent,
        after={"reason": reason, "builds_stopped": stopped, "employments_suspended": suspended},
    )
    return Enforcement(stopped, suspended)


def enforce_lapsed_consents(now: dt.datetime | None = None) -> int:
    """The hourly sweep: enforce every consent that expired (or was revoked) and was not yet.

    Cross-tenant: consents of every organization are looked at; each is enforced in its own
    transaction, so one failure does not hold back the others.
    """
    now = now or timezone.now()
    lapsed = (
        Consent.objects.unscoped_dangerously()
        .filter(enforced_at__isnull=True)
        .filter(Q(revoked_at__isnull=False) | Q(expires_at__lte=now))
        .values_list("organization_id", "pk")
    )
    enforced = 0
    for organization_id, consent_id in list(lapsed):
        organization = Organization.objects.get(pk=organization_id)
        with transaction.atomic():
            consent = (
                Consent.objects.for_organization(organization)
                .select_for_update()
                .filter(pk=consent_id, enforced_at__isnull=True)
                .first()
            )
            if consent is not None:
                enforce_consent(SYSTEM, consent, at=now)
                enforced += 1
    return enforced
