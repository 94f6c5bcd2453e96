"""URLs of the HR domain, all under /api/v1/orgs/{org}/. Each slice registers its own routes."""

from rest_framework.routers import SimpleRouter

from avatars.api import (
    avatars,
    builds,
    consents,
    employments,
    knowledge,
    market,
    positions,
    reviews,
    uploads,
)

router = SimpleRouter(trailing_slash=True)
for slice_ in (
    avatars,
    uploads,
    consents,
    builds,
    market,
    positions,
    employments,
    knowledge,
    reviews,
):
    slice_.register(router)

organization_urlpatterns = router.urls
