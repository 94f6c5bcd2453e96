"""URLs of inference for people: an organization's workloads, capacity and reservations under
/api/v1/orgs/{org}/, and the operators' routes under /api/v1/platform/inference/. (Workers speak
their own protocol: inference.api.worker.)"""

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from inference.api import capacity, operators, workloads

router = SimpleRouter(trailing_slash=True)
workloads.register(router)
capacity.register(router)

organization_urlpatterns: list[URLPattern | URLResolver] = [
    path("capacity/", capacity.CapacityView.as_view(), name="capacity"),
    path("capacity/calendar/", capacity.CapacityCalendarView.as_view(), name="capacity-calendar"),
    *router.urls,
]

operator_urlpatterns: list[URLPattern | URLResolver] = [
    path("calendar/", operators.PlatformCalendarView.as_view(), name="inference-platform-calendar"),
    *operators.router.urls,
]
