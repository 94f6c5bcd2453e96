"""Actions that change organizations, memberships, invitations and API keys.

Each action runs in one transaction and writes an audit entry; a refused action raises a
`DomainError` and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants import audit, selectors, signals, tokens
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError, GoneError
from tenants.models import (
    ApiKey,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    User,
)
from tenants.roles import API_KEY_SCOPES, Role, may_assign_role

INVITATION_LIFETIME = dt.timedelta(days=7)
API_KEY_TOUCH_INTERVAL = dt.timedelta(minutes=1)
ORGANIZATION_FIELDS = ("name", "kind", "time_zone", "locale")


@transaction.atomic
def create_organization(
    *,
    slug: str,
    name: str,
    kind: str,
    owner: User,
    time_zone: str = "Asia/Shanghai",
    locale: str = "zh-hans",
    actor: Actor | None = None,
) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise ConflictError("slug_taken", _("This slug is already taken."), field="slug")
    organization = Organization.objects.create(
        slug=slug, name=name, kind=kind, time_zone=time_zone, locale=locale
    )
    membership = Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    who = actor or Actor(user=owner, role=Role.OWNER)
    audit.record(
        who, organization, "organization.create", organization, after=audit.snapshot(organization)
    )
    audit.record(
        who, organization, "membership.create", membership, after=audit.snapshot(membership)
    )
    return organization


@transaction.atomic
def update_organization(actor: Actor, organization: Organization, **changes: Any) -> Organization:
    before = audit.snapshot(organization)
    for field, value in changes.items():
        if field not in ORGANIZATION_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=field)
        setattr(organization, field, value)
    organization.save(update_fields=[*changes.keys()])
    audit.record_update(actor, organization, "organization.update", organization, before=before)
    return organization


def _require_may_assign(actor: Actor, role: str) -> None:
    if actor.role is None or not may_assign_role(actor.role, role):
        raise DomainError(
            "role_not_assignable",
            _("Only an owner can make someone an owner."),
            field="role",
        )


def _require_owner_to_touch_owner(actor: Actor) -> None:
    if actor.role != Role.OWNER:
        raise DomainError(
            "role_not_assignable", _("Only an owner can change or remove another owner.")
        )


@transaction.atomic
def invite_member(
    actor: Actor,
    organization: Organization,
    *,
    email: str,
    role: str,
    lifetime: dt.timedelta = INVITATION_LIFETIME,
) -> tuple[Invitation, str]:
    """Invite someone by email. Returns the invitation and its token, which is shown once."""
    _require_may_assign(actor, role)
    email = email.strip().lower()
    if Membership.objects.for_organization(organization).filter(user__email=email).exists():
        raise ConflictError("already_member", _("This person is already a member."), field="email")
    pending = Invitation.objects.for_organization(organization).filter(
        email=email, status=InvitationStatus.PENDING
    )
    if pending.filter(expires_at__gt=timezone.now()).exists():
        raise ConflictError(
            "already_invited",
            _("This person already has a pending invitation; revoke it to send a new one."),
            field="email",
        )
    pending.update(status=InvitationStatus.EXPIRED)
    token = tokens.new_invitation_token()
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=tokens.digest(token),
        invited_by=actor.user,
        expires_at=timezone.now() + lifetime,
    )
    audit.record(
        actor,
        organization,
        "invitation.create",
        invitation,
        after=audit.snapshot(invitation, exclude=("token_hash",)),
    )
    return invitation, token


@transaction.atomic
def revoke_invitation(actor: Actor, invitation: Invitation) -> Invitation:
    if invitation.status != InvitationStatus.PENDING:
        raise ConflictError(
            "invitation_not_pending",
            _("Only a pending invitation can be revoked; this one is %(status)s.")
            % {"status": invitation.get_status_display()},
        )
    invitation.status = InvitationStatus.REVOKED
    invitation.save(update_fields=["status"])
    audit.record(
        actor,
        invitation.organization,
        "invitation.revoke",
        invitation,
        before={"status": InvitationStatus.PENDING},
        after={"status": InvitationStatus.REVOKED},
    )
    return invitation


@transaction.atomic
def accept_invitation(
    token: str, user: User, *, ip_address: str | None = None, request_id: str = ""
) -> Membership:
    invitation = selectors.invitation_for_token(token)
    if invitation is None:
        raise DomainError(
            "invitation_invalid",
            _("This invitation link is not valid. Check that you copied all of it."),
            field="token",
        )
    invitation = (
        Invitation.objects.for_organization(invitation.organization)
        .select_for_update()
        .get(pk=invitation.pk)
    )
    organization = invitation.organization
    if not organization.is_active:
        raise GoneError(
            "organization_inactive",
            _("%(org)s no longer uses Ironbowl; this invitation cannot be accepted.")
            % {"org": organization.name},
        )
    if invitation.status == InvitationStatus.REVOKED:
        raise GoneError(
            "invitation_revoked",
            _("This invitation was withdrawn. Ask an administrator of %(org)s for a new one.")
            % {"org": organization.name},
        )
    if invitation.status == InvitationStatus.ACCEPTED:
        raise GoneError("invitation_used", _("This invitation has already been accepted."))
    if invitation.status == InvitationStatus.EXPIRED or invitation.expires_at <= timezone.now():
        raise GoneError(
            "invitation_expired",
            _("This invitation expired. Ask an administrator of %(org)s to invite you again.")
            % {"org": organization.name},
        )
    if user.email.lower() != invitation.email:
        raise DomainError(
            "invitation_other_email",
            _("This invitation was sent to another email address. Sign in with that address."),
        )
    actor = Actor(user=user, ip_address=ip_address, request_id=request_id)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                organization=organization, user=user, role=invitation.role
            )
    except IntegrityError:
        raise ConflictError("already_member", _("You are already a member.")) from None
    invitation.status = InvitationStatus.ACCEPTED
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["status", "accepted_at"])
    audit.record(
        actor,
        organization,
        "invitation.accept",
        invitation,
        after={"status": InvitationStatus.ACCEPTED},
    )
    audit.record(
        actor, organization, "membership.create", membership, after=audit.snapshot(membership)
    )
    return membership


def expire_invitations(now: dt.datetime | None = None) -> int:
    """Mark pending invitations past their expiry as expired (a periodic task)."""
    now = now or timezone.now()
    expired = 0
    for organization in Organization.objects.all():
        expired += (
            Invitation.objects.for_organization(organization)
            .filter(status=InvitationStatus.PENDING, expires_at__lte=now)
            .update(status=InvitationStatus.EXPIRED)
        )
    return expired


@transaction.atomic
def add_member(actor: Actor, organization: Organization, user: User, role: str) -> Membership:
    """Add an existing user directly (staff, demo data); people normally join by invitation."""
    if Membership.objects.for_organization(organization).filter(user=user).exists():
        raise ConflictError("already_member", _("This person is already a member."))
    membership = Membership.objects.create(organization=organization, user=user, role=role)
    audit.record(
        actor, organization, "membership.create", membership, after=audit.snapshot(membership)
    )
    return membership


def _guard_last_owner(membership: Membership, new_role: str | None) -> None:
    losing_owner = membership.role == Role.OWNER and new_role != Role.OWNER
    if losing_owner and selectors.owner_count(membership.organization) <= 1:
        raise ConflictError(
            "last_owner",
            _("An organization needs at least one owner; make someone else owner first."),
        )


@transaction.atomic
def change_member_role(actor: Actor, membership: Membership, role: str) -> Membership:
    if membership.role == Role.OWNER:
        _require_owner_to_touch_owner(actor)
    _require_may_assign(actor, role)
    _guard_last_owner(membership, role)
    if role == membership.role:
        return membership  # nothing changes, nothing to audit
    before = audit.snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    signals.membership_role_changed.send(sender=Membership, membership=membership)
    audit.record(
        actor,
        membership.organization,
        "membership.update",
        membership,
        before=before,
        after=audit.snapshot(membership),
    )
    return membership


@transaction.atomic
def remove_member(actor: Actor, membership: Membership) -> None:
    if membership.role == Role.OWNER:
        _require_owner_to_touch_owner(actor)
    _guard_last_owner(membership, None)
    before = audit.snapshot(membership)
    audit.record(actor, membership.organization, "membership.delete", membership, before=before)
    signals.membership_removed.send(sender=Membership, membership=membership)
    membership.delete()


@transaction.atomic
def create_api_key(
    actor: Actor, organization: Organization, *, name: str, scopes: Iterable[str]
) -> tuple[ApiKey, str]:
    """Create a key. Returns it with its token, which is shown this once and never again."""
    scopes = sorted(set(scopes))
    unknown = [scope for scope in scopes if scope not in API_KEY_SCOPES]
    if unknown or not scopes:
        raise DomainError(
            "invalid_scopes",
            _("Choose one or more of: %(allowed)s.")
            % {"allowed": ", ".join(sorted(API_KEY_SCOPES))},
            field="scopes",
        )
    token, prefix = tokens.new_api_key()
    key = ApiKey.objects.create(
        organization=organization,
        name=name,
        prefix=prefix,
        key_hash=tokens.digest(token),
        scopes=scopes,
        created_by=actor.user,
    )
    audit.record(
        actor, organization, "api_key.create", key, after=audit.snapshot(key, exclude=("key_hash",))
    )
    return key, token


@transaction.atomic
def revoke_api_key(actor: Actor, key: ApiKey) -> ApiKey:
    if key.revoked_at is not None:
        return key  # revoking twice is a no-op: a retried request must not fail
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    audit.record(
        actor,
        key.organization,
        "api_key.revoke",
        key,
        before={"revoked_at": None},
        after={"revoked_at": key.revoked_at.isoformat()},
    )
    return key


def touch_api_key(key: ApiKey) -> None:
    """Note when a key was last used, at most once a minute so reads stay cheap."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.for_organization(key.organization).filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
