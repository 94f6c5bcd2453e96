"""Django admin for platform staff (cross-organization by design)."""

from django.contrib import admin

from avatars import models
from tenants.admin import CrossTenantAdmin


@admin.register(models.Avatar)
class AvatarAdmin(CrossTenantAdmin):
    list_display = ["name_en", "name_zh", "organization", "visibility", "status", "list_price"]
    list_filter = ["visibility", "status"]
    search_fields = ["name_en", "name_zh"]


@admin.register(models.AvatarBuild)
class AvatarBuildAdmin(CrossTenantAdmin):
    list_display = ["id", "organization", "avatar", "status", "progress", "created_at"]
    list_filter = ["status"]


@admin.register(models.Consent)
class ConsentAdmin(CrossTenantAdmin):
    list_display = ["subject_name", "organization", "scope", "expires_at", "revoked_at"]


@admin.register(models.Employment)
class EmploymentAdmin(CrossTenantAdmin):
    list_display = ["id", "organization", "avatar", "status", "seats", "starts_on"]
    list_filter = ["status"]


for model in (
    models.Upload,
    models.AvatarVersion,
    models.Position,
    models.EmploymentTransition,
    models.KnowledgeEntry,
    models.KnowledgeDocument,
    models.PerformanceReview,
):
    admin.site.register(model, CrossTenantAdmin)
