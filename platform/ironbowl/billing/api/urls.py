"""Billing routes under /api/v1/orgs/{org}/billing/, and Stripe's webhook."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from ironbowl.billing.api.account import BillingAccountView, BillingPortalView
from ironbowl.billing.api.budgets import BudgetView
from ironbowl.billing.api.corrections import UsageReversalView
from ironbowl.billing.api.notifications import NotificationViewSet
from ironbowl.billing.api.plans import PlanListView, SubscriptionView
from ironbowl.billing.api.refunds import RefundViewSet, StatementRefundsView
from ironbowl.billing.api.statements import StatementViewSet
from ironbowl.billing.api.webhooks import StripeWebhookView

notification_router = SimpleRouter(trailing_slash=True)
notification_router.register("notifications", NotificationViewSet, basename="notification")
statement_router = SimpleRouter(trailing_slash=True)
statement_router.register("billing/statements", StatementViewSet, basename="statement")
refund_router = SimpleRouter(trailing_slash=True)
refund_router.register("billing/refunds", RefundViewSet, basename="billing-refund")

organization_urlpatterns: list[URLPattern | URLResolver] = [
    path("billing/budget/", BudgetView.as_view(), name="billing-budget"),
    path("billing/account/", BillingAccountView.as_view(), name="billing-account"),
    path("billing/account/portal/", BillingPortalView.as_view(), name="billing-portal"),
    *refund_router.urls,
    *notification_router.urls,
    path("billing/plans/", PlanListView.as_view(), name="billing-plans"),
    path("billing/subscription/", SubscriptionView.as_view(), name="billing-subscription"),
    *statement_router.urls,
]
# Not under an organization: Stripe calls it, and the signature says who it is.
public_urlpatterns: list[URLPattern | URLResolver] = [
    path("stripe/webhook/", StripeWebhookView.as_view(), name="stripe-webhook"),
    # Platform staff only (money leaving the platform): not under an organization either.
    path(
        "statements/<uuid:statement_id>/refunds/",
        StatementRefundsView.as_view(),
        name="statement-refunds",
    ),
    path("usage/<int:record_id>/reversal/", UsageReversalView.as_view(), name="usage-reversal"),
]
