"""URL map: the console under /console/, the API under /api/v1/, the docs, operations endpoints
and the admin."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from avatars.api.urls import organization_urlpatterns as avatars_org_urls
from inference.api.urls import operator_urlpatterns as inference_operator_urls
from inference.api.urls import organization_urlpatterns as inference_org_urls
from inference.api.worker import urlpatterns as worker_protocol_urls
from inference.api.worker_artifacts import urlpatterns as worker_artifact_urls
from ironbowl.analytics.api.urls import organization_urlpatterns as analytics_org_urls
from ironbowl.billing.api.urls import organization_urlpatterns as billing_org_urls
from ironbowl.billing.api.urls import public_urlpatterns as billing_public_urls
from scheduling.api.urls import organization_urlpatterns as scheduling_org_urls
from scheduling.api.widgets import urlpatterns as public_widget_urls
from tenants.api.urls import account_urlpatterns
from tenants.api.urls import organization_urlpatterns as tenants_org_urls

organization_urlpatterns: list[URLPattern | URLResolver] = [
    *tenants_org_urls,
    *scheduling_org_urls,
    *avatars_org_urls,
    *inference_org_urls,
    *analytics_org_urls,
    *billing_org_urls,
]

api_v1: list[URLPattern | URLResolver] = [
    *account_urlpatterns,
    path("inference/worker/", include([*worker_protocol_urls, *worker_artifact_urls])),
    path("platform/inference/", include(inference_operator_urls)),
    # Open to anyone (no account, no key): a web widget's visitors, by the widget's public key.
    path("public/", include(public_widget_urls)),
    path("billing/", include(billing_public_urls)),
    path("orgs/<slug:org>/", include(organization_urlpatterns)),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:home", permanent=False)),
    path("console/", include("ironbowl.console.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # the console's language switcher
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
]

handler404 = "ironbowl.console.errors.page_not_found"
handler500 = "ironbowl.console.errors.server_error"
