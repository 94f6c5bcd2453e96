"""The console's URLs: account pages, platform staff pages, and each organization's sections
under /console/o/{org}/."""

from django.urls import include, path

from ironbowl.console.pages import (
    account,
    administration,
    analytics,
    avatars,
    billing,
    board,
    dashboard,
    employees,
    market,
    operators,
    roster,
    samples,
    stations,
)

app_name = "console"

organization_urlpatterns = [
    *dashboard.urlpatterns,
    *board.urlpatterns,
    *market.urlpatterns,
    *samples.urlpatterns,
    *employees.urlpatterns,
    *avatars.urlpatterns,
    *stations.urlpatterns,
    *roster.urlpatterns,
    *analytics.urlpatterns,
    *billing.urlpatterns,
    *administration.urlpatterns,
]

urlpatterns = [
    path("", account.Home.as_view(), name="home"),
    path("sign-in/", account.SignIn.as_view(), name="sign-in"),
    path("sign-out/", account.sign_out, name="sign-out"),
    path("platform/", include(operators.urlpatterns)),
    path("o/<slug:org>/", include(organization_urlpatterns)),
]
