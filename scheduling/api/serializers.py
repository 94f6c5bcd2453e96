"""Payloads of the stations API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from avatars.models import Employment
from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer, TenantRelatedField
from scheduling import services
from scheduling.models import Station
from scheduling.services import StreamingPlatform
from tenants.api.serializers import MemberSerializer
from tenants.models import Membership


class StationSerializer(StrictModelSerializer):
    """A place where digital employees work: a live room, a lobby kiosk, a web widget or a
    hotline. A live room's stream key is write-only."""

    max_on_air = serializers.IntegerField(
        min_value=1,
        max_value=services.MAX_ON_AIR,
        required=False,
        help_text="How many digital employees may be on air here at once.",
    )
    platform = serializers.ChoiceField(
        choices=StreamingPlatform.choices,
        allow_blank=True,
        required=False,
        help_text="Live rooms: the streaming platform.",
    )
    push_url = serializers.CharField(
        allow_blank=True,
        required=False,
        max_length=500,
        help_text="Live rooms: the RTMP server to push to, rtmp:// or rtmps:// (no stream key).",
    )
    stream_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=services.STREAM_KEY_MAX_LENGTH,
        style={"input_type": "password"},
        help_text=(
            "Live rooms: the platform's stream key. Write-only: it is stored encrypted and never "
            "shown again (see stream_key_set and stream_key_hint); an empty string removes it."
        ),
    )
    stream_key_set = serializers.SerializerMethodField(
        help_text="Whether a stream key is saved (the key itself is never returned)."
    )
    stream_key_hint = serializers.CharField(
        read_only=True,
        help_text="The saved stream key's last 4 characters (empty for a short key).",
    )
    widget_key = serializers.CharField(
        read_only=True,
        help_text=(
            "Web widgets: the public key the widget's page embeds to open conversations "
            "(POST /api/v1/public/widgets/{widget_key}/sessions/); rotate-widget-key replaces it."
        ),
    )

    class Meta:
        model = Station
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "is_active",
            "platform",
            "push_url",
            "stream_key",
            "stream_key_set",
            "stream_key_hint",
            "widget_key",
            "ai_label_required",
            "max_on_air",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators: list[object] = []  # uniqueness is the service's job, scoped to the org

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_stream_key_set(self, station: Station) -> bool:
        return bool(station.stream_key_encrypted)


class OperatorGrantSerializer(StrictSerializer):
    member = TenantRelatedField(Membership, help_text="Id of a member with the operator role.")


OperatorSerializer = MemberSerializer


# The languages a conversation starts in (named once in the schema: SessionLanguageEnum).
SESSION_LANGUAGES = [("zh", "Mandarin"), ("yue", "Cantonese"), ("en", "English")]


class WidgetSessionOpenSerializer(StrictSerializer):
    language = serializers.ChoiceField(
        choices=SESSION_LANGUAGES,
        default="zh",
        help_text="The language the conversation starts in; each answer follows the question's.",
    )
    video = serializers.BooleanField(
        default=True,
        help_text="Send lip-synced video chunks with the audio (needs the avatar's portrait).",
    )


class SessionOpenSerializer(WidgetSessionOpenSerializer):
    employment = TenantRelatedField(Employment, help_text="The digital employee who answers.")


class SessionTicketSerializer(serializers.Serializer[Any]):
    workload = serializers.UUIDField(help_text="The session workload (follow it like any other).")
    state = serializers.CharField()
    token = serializers.CharField(help_text="Give it to the visitor's widget; it is short-lived.")
    expires_at = serializers.DateTimeField(help_text="Connect before this time.")
    socket_path = serializers.CharField(help_text="Open this websocket and send the token first.")
    video = serializers.BooleanField()
