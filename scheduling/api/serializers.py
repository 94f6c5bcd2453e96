"""Payloads of the stations API."""

from __future__ import annotations

from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from scheduling.models import Station
from tenants.api.serializers import MemberSerializer
from tenants.models import Membership


class StationSerializer(StrictModelSerializer):
    class Meta:
        model = Station
        fields = ["id", "name", "kind", "description", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators: list[object] = []  # uniqueness is the service's job, scoped to the org


class OperatorGrantSerializer(StrictSerializer):
    member = TenantRelatedField(Membership, help_text="Id of a member with the operator role.")


OperatorSerializer = MemberSerializer
