"""GET /api/v1/orgs/{org}/billing/account/: whether Stripe collects for the organization, and
where dunning stands (billing.view).

Read-only: the account changes only through Stripe's events and the dunning task.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationAPIView
from ironbowl.billing import stripe_client
from ironbowl.billing.models import BillingAccount
from tenants.roles import Permission as P


class BillingAccountSerializer(serializers.ModelSerializer[BillingAccount]):
    stripe_enabled = serializers.SerializerMethodField(
        help_text="Whether this platform collects through Stripe at all."
    )
    stripe_customer = serializers.SerializerMethodField(
        help_text="Whether the organization has its Stripe customer yet (made at its first "
        "invoice)."
    )
    suspended_employments = serializers.ListField(
        child=serializers.UUIDField(), help_text="Digital employees suspended for non-payment."
    )

    class Meta:
        model = BillingAccount
        fields = [
            "stripe_enabled",
            "stripe_customer",
            "dunning",
            "grace_until",
            "suspended_employments",
            "stripe_subscription_status",
        ]
        read_only_fields = fields

    def get_stripe_enabled(self, account: BillingAccount) -> bool:
        return stripe_client.configured()

    def get_stripe_customer(self, account: BillingAccount) -> bool:
        return bool(account.stripe_customer_id)


class BillingAccountView(OrganizationAPIView):
    permission_map = {"get": P.BILLING_VIEW}

    @extend_schema(tags=["billing"], responses=BillingAccountSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The organization's billing account: in good standing, with no customer, until used."""
        account = BillingAccount.objects.for_organization(self.organization).first()
        if account is None:
            account = BillingAccount(organization=self.organization)
        return Response(BillingAccountSerializer(account).data)
