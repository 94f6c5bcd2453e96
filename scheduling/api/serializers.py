"""Payloads of the stations API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from avatars.models import Employment
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


class SessionOpenSerializer(StrictSerializer):
    employment = TenantRelatedField(Employment, help_text="The digital employee who answers.")
    language = serializers.ChoiceField(
        choices=[("zh", "Mandarin"), ("yue", "Cantonese"), ("en", "English")],
        default="zh",
        help_text="The language the conversation starts in; each answer follows the question's.",
    )
    video = serializers.BooleanField(
        default=True,
        help_text="Send lip-synced video chunks with the audio (needs the avatar's portrait).",
    )


class SessionTicketSerializer(serializers.Serializer[Any]):
    workload = serializers.UUIDField(help_text="The session workload (follow it like any other).")
    state = serializers.CharField()
    token = serializers.CharField(help_text="Give it to the visitor's widget; it is short-lived.")
    expires_at = serializers.DateTimeField(help_text="Connect before this time.")
    socket_path = serializers.CharField(help_text="Open this websocket and send the token first.")
    video = serializers.BooleanField()
