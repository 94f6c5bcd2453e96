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
    MARKET_VIEW = "market.view", _("Browse the talent market")
    AVATARS_VIEW = "avatars.view", _("View the organization's avatars, builds and consents")
    AVATARS_MANAGE = "avatars.manage", _("Create avatars, record consent and run builds")
    UPLOADS_MANAGE = "uploads.manage", _("Upload files")
    POSITIONS_VIEW = "positions.view", _("View positions")
    POSITIONS_MANAGE = "positions.manage", _("Create and change positions")
    EMPLOYMENTS_VIEW = "employments.view", _("View digital employees")
    EMPLOYMENTS_MANAGE = "employments.manage", _("Hire, onboard, suspend and let go")
    KNOWLEDGE_VIEW = "knowledge.view", _("Read the knowledge base")
    KNOWLEDGE_MANAGE = "knowledge.manage", _("Edit the knowledge base")
    REVIEWS_VIEW = "reviews.view", _("Read performance reviews")
    REVIEWS_MANAGE = "reviews.manage", _("Write performance reviews")
    WORKLOADS_VIEW = "workloads.view", _("View GPU workloads, capacity and reservations")
    WORKLOADS_MANAGE = "workloads.manage", _("Submit and cancel GPU workloads, reserve capacity")
    ANALYTICS_VIEW = "analytics.view", _("Read KPIs, ROI and usage")
    ANALYTICS_MANAGE = "analytics.manage", _("Set what outcomes are worth")
    EVENTS_WRITE = "events.write", _("Send analytics events")
    BILLING_VIEW = "billing.view", _("See the plan, statements, payslips and the budget")
    BILLING_MANAGE = "billing.manage", _("Change the plan, the budget and billing details")


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
    Permission.MARKET_VIEW: _EVERYONE,
    Permission.AVATARS_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST}),
    Permission.AVATARS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    Permission.UPLOADS_MANAGE: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR}),
    Permission.POSITIONS_VIEW: _EVERYONE,
    Permission.POSITIONS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    Permission.EMPLOYMENTS_VIEW: _EVERYONE,
    Permission.EMPLOYMENTS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    # Operators keep the service desk's answers current.
    Permission.KNOWLEDGE_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST}),
    Permission.KNOWLEDGE_MANAGE: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR}),
    Permission.REVIEWS_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.ANALYST}),
    Permission.REVIEWS_MANAGE: frozenset({Role.OWNER, Role.ADMIN, Role.ANALYST}),
    Permission.WORKLOADS_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST}),
    # Operators run the streams and sessions: they start and stop the work behind them.
    Permission.WORKLOADS_MANAGE: frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR}),
    Permission.ANALYTICS_VIEW: _EVERYONE,
    Permission.ANALYTICS_MANAGE: frozenset({Role.OWNER, Role.ADMIN}),
    # Events come from machines (streaming platforms, widgets); people send them only to try.
    Permission.EVENTS_WRITE: frozenset({Role.OWNER, Role.ADMIN}),
    Permission.BILLING_VIEW: frozenset({Role.OWNER, Role.ADMIN, Role.BILLING}),
    Permission.BILLING_MANAGE: frozenset({Role.OWNER, Role.BILLING}),
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
        Permission.MARKET_VIEW,
        Permission.AVATARS_VIEW,
        Permission.POSITIONS_VIEW,
        Permission.EMPLOYMENTS_VIEW,
        Permission.KNOWLEDGE_VIEW,
        Permission.KNOWLEDGE_MANAGE,
        Permission.UPLOADS_MANAGE,
        Permission.WORKLOADS_VIEW,
        Permission.WORKLOADS_MANAGE,
        Permission.ANALYTICS_VIEW,
        Permission.EVENTS_WRITE,
        Permission.BILLING_VIEW,
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
