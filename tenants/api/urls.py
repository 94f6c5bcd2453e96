from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.api import views

router = SimpleRouter(trailing_slash=True)
router.register("members", views.MemberViewSet, basename="member")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("audit", views.AuditEntryViewSet, basename="audit-entry")

account_urlpatterns = [
    path("auth/login/", views.LoginView.as_view(), name="login"),
    path("auth/logout/", views.LogoutView.as_view(), name="logout"),
    path("me/", views.MeView.as_view(), name="me"),
    path("invitations/accept/", views.AcceptInvitationView.as_view(), name="invitation-accept"),
    path("orgs/", views.OrganizationListView.as_view(), name="organization-list"),
]

organization_urlpatterns = [
    path("", views.OrganizationDetailView.as_view(), name="organization-detail"),
    *router.urls,
]
