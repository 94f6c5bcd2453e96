"""The organization's notifications (budget alerts, payments): newest first, marked read."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationViewSet
from ironbowl.billing import notifications
from ironbowl.billing.models import Notification, NotificationKind
from tenants.roles import Permission as P


class NotificationSerializer(serializers.ModelSerializer[Notification]):
    class Meta:
        model = Notification
        fields = ["id", "kind", "message", "data", "created_at", "read_at"]
        read_only_fields = fields


class NotificationFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped base
    kind = django_filters.ChoiceFilter(choices=NotificationKind.choices)
    unread = django_filters.BooleanFilter(field_name="read_at", lookup_expr="isnull")

    class Meta:
        model = Notification
        fields = ["kind", "unread"]


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationViewSet):
    """What the organization's owners and billing members were told (and e-mailed), newest
    first. Notifications speak of money, so they need billing.view; marking one read is
    the reader's acknowledgement, not a change of billing, and needs no more."""

    model = Notification
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    ordering_fields = ["created_at"]
    permission_map = {"list": P.BILLING_VIEW, "retrieve": P.BILLING_VIEW, "read": P.BILLING_VIEW}

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Mark the notification read; again changes nothing (the first time is kept)."""
        notification = notifications.mark_read(self.organization, self.get_object())
        return Response(self.get_serializer(notification).data)
