"""Filters of the tenants API."""

from __future__ import annotations

import django_filters

from tenants.models import ApiKey, AuditEntry, Invitation, InvitationStatus, Membership
from tenants.roles import Role


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["role"]


class InvitationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvitationStatus.choices)

    class Meta:
        model = Invitation
        fields = ["status"]


class ApiKeyFilter(django_filters.FilterSet):
    active = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull")

    class Meta:
        model = ApiKey
        fields = ["active"]


class AuditFilter(django_filters.FilterSet):
    action = django_filters.CharFilter()
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "object_type", "object_id", "since", "until"]
