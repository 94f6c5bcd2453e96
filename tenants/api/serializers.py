"""Payloads of the tenants API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ironbowl.api.serializers import StrictModelSerializer, StrictSerializer
from tenants.models import ApiKey, AuditEntry, Invitation, Membership, Organization, slug_validator
from tenants.roles import API_KEY_SCOPES, permissions_of_role


class OrganizationSerializer(StrictModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name", "kind", "time_zone", "locale", "plan", "created_at"]
        read_only_fields = ["id", "slug", "plan", "created_at"]


class OrganizationCreateSerializer(StrictSerializer):
    slug = serializers.CharField(max_length=50, validators=[slug_validator])
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Organization._meta.get_field("kind").choices)  # type: ignore[arg-type]
    time_zone = serializers.ChoiceField(
        choices=Organization._meta.get_field("time_zone").choices,  # type: ignore[arg-type]
        default="Asia/Shanghai",
    )
    locale = serializers.ChoiceField(
        choices=Organization._meta.get_field("locale").choices,  # type: ignore[arg-type]
        default="zh-hans",
    )


class MyMembershipSerializer(serializers.Serializer[Membership]):
    organization = OrganizationSerializer(read_only=True)
    role = serializers.CharField(read_only=True)
    permissions = serializers.SerializerMethodField()

    def get_permissions(self, membership: Membership) -> list[str]:
        return permissions_of_role(membership.role)


class MemberSerializer(StrictModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "created_at", "updated_at"]
        read_only_fields = ["id", "email", "full_name", "created_at", "updated_at"]


class InvitationSerializer(StrictModelSerializer):
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "expires_at", "accepted_at", "created_at"]
        read_only_fields = ["id", "status", "expires_at", "accepted_at", "created_at"]


class InvitationCreatedSerializer(InvitationSerializer):
    token = serializers.CharField(
        read_only=True, help_text="Shown only in this response; send it to the invitee."
    )

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token"]


class AcceptInvitationSerializer(StrictSerializer):
    token = serializers.CharField(max_length=200)


class ApiKeySerializer(StrictModelSerializer):
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(API_KEY_SCOPES)), allow_empty=False
    )
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "is_active",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    token = serializers.CharField(
        read_only=True, help_text="The secret, shown only in this response. Store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "token"]


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
            "ip_address",
            "request_id",
            "created_at",
        ]
        read_only_fields = fields


class LoginSerializer(StrictSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class MeSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField(read_only=True)
    full_name = serializers.CharField(read_only=True)
    is_staff = serializers.BooleanField(read_only=True)
    memberships = MyMembershipSerializer(many=True, read_only=True)
