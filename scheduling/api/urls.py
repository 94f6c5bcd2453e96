from rest_framework.routers import SimpleRouter

from scheduling.api import views

router = SimpleRouter(trailing_slash=True)
router.register("stations", views.StationViewSet, basename="station")

organization_urlpatterns = router.urls
