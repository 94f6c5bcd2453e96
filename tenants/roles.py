"""Roles and the one permission matrix.

A member's role grants coarse rights in their organization; an API key's scopes are drawn from the
same permission names. Per-object grants (an operator for three stations only) live beside the
objects, as django-guardian direct-FK permissions.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Administrator")
    OPERATOR = "operator", _("Operator")
    ANALYST = "analyst", _("Analyst")
    BILLING = "billing", _("Billing")


class Permission(models.TextChoices):
    ORGANIZATION_VIEW = "organization.view", _("View the organization")
    ORGANIZATION_MANAGE = "organization.manage", _("Change the organization's settings")
    MEMBERS_VIEW = "members.view", _("View members and invitations")
    MEMBERS_MANAGE = "members.manage", _("Invite, change and remove members")
    API_KEYS_MANAGE = "api_keys.manage", _("Create and revoke API keys")
    AUDIT_VIEW = "audit.view", _("Read the audit log")
    STATIONS_VIEW = "stations.view", _("View stations")
    STATIONS_MANAGE = "stations.manage", _("Create, delete and assign stations")
    STATIONS_OPERATE = "stations.operate", _("Operate every station")


_EVERYONE = frozenset(Role)

MATRIX: dict[Permission, frozenset[Role]] = {
    Permission.ORGANIZATION_VIEW: _EVERYONE,
    Permission.ORGANIZATION_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    Permission.MEMBERS_VIEW: _EVERYONE,
    Permission.MEMBERS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    Permission.API_KEYS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    Permission.AUDIT_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.ANALYST}),
    Permission.STATIONS_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST}),
    Permission.STATIONS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    # Operators operate only the stations they are granted (guardian object permission).
    Permission.STATIONS_OPERATE: frozenset({Role.OWNER, Role.ADMIN}),
}

# What an API key may be given: machines never manage people or other keys.
API_KEY_SCOPES: frozenset[Permission] = frozenset(
    {
        Permission.ORGANIZATION_VIEW,
        Permission.MEMBERS_VIEW,
        Permission.AUDIT_VIEW,
        Permission.STATIONS_VIEW,
        Permission.STATIONS_MANAGE,
        Permission.STATIONS_OPERATE,
    }
)


def role_allows(role: str, permission: Permission) -> bool:
    return role in MATRIX[permission]


def permissions_of_role(role: str) -> list[str]:
    return sorted(p.value for p, roles in MATRIX.items() if role in roles)


# Roles a member may hand out: only an owner makes owners.
def may_assign_role(assigner_role: str, role: str) -> bool:
    if role == Role.OWNER:
        return assigner_role == Role.OWNER
    return assigner_role in (Role.OWNER, Role.ADMIN)
