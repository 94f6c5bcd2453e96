from django.contrib import admin

from scheduling.models import Station
from tenants.admin import CrossTenantAdmin


@admin.register(Station)
class StationAdmin(CrossTenantAdmin):
    list_display = ["name", "organization", "kind", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
