"""Queries about organizations and the people and machines in them."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants import tokens
from tenants.models import ApiKey, Invitation, Membership, Organization, User


def organization_by_slug(slug: str) -> Organization | None:
    return Organization.objects.filter(slug=slug, is_active=True).first()


def membership_of(user: User, organization: Organization) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.for_organization(organization).filter(user=user).first()


def memberships_of_user(user: User) -> QuerySet[Membership]:
    # A person's own memberships span organizations by nature: this is the one reviewed place.
    return (
        Membership.objects.unscoped_dangerously()
        .filter(user=user, organization__is_active=True)
        .select_related("organization")
        .order_by("organization__name")
    )


def api_key_for_token(token: str) -> ApiKey | None:
    """The key a bearer token names, or None. Revoked keys are returned: the caller says why."""
    prefix = tokens.api_key_prefix(token)
    if prefix is None:
        return None
    # The prefix is globally unique; the key then binds the request to its one organization.
    key = (
        ApiKey.objects.unscoped_dangerously()
        .select_related("organization")
        .filter(prefix=prefix)
        .first()
    )
    if key is None or not tokens.matches(token, key.key_hash):
        return None
    return key


def invitation_for_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.unscoped_dangerously()
        .select_related("organization")
        .filter(token_hash=tokens.digest(token))
        .first()
    )


def owner_count(organization: Organization) -> int:
    return Membership.objects.for_organization(organization).filter(role="owner").count()
