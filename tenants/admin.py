"""Django admin for platform staff. Staff work across organizations by design, so the admin
reads tenant-owned rows through the named escape hatch."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.models import ApiKey, AuditEntry, Invitation, Membership, Organization, User


class CrossTenantAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        manager: Any = self.model.objects
        return manager.unscoped_dangerously().select_related("organization")  # type: ignore[no-any-return]


@admin.register(User)
class UserAdmin(BaseUserAdmin):  # type: ignore[type-arg]
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"fields": ("email", "full_name", "password1", "password2")}),)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "slug", "kind", "plan", "time_zone", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug"]


@admin.register(Membership)
class MembershipAdmin(CrossTenantAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    raw_id_fields = ["user"]


@admin.register(Invitation)
class InvitationAdmin(CrossTenantAdmin):
    list_display = ["email", "organization", "role", "status", "expires_at"]
    list_filter = ["status"]
    readonly_fields = ["token_hash"]


@admin.register(ApiKey)
class ApiKeyAdmin(CrossTenantAdmin):
    list_display = ["name", "prefix", "organization", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "last_used_at"]


@admin.register(AuditEntry)
class AuditEntryAdmin(CrossTenantAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "object_type"]
    list_filter = ["action"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
