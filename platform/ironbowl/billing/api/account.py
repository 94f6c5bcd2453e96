"""The organization's billing account, under /api/v1/orgs/{org}/billing/account/.

- GET: whether Stripe collects for the organization, its billing e-mail, and where dunning
  stands (billing.view).
- PUT / PATCH with `email`: the billing contact Stripe sends invoices and receipts to
  (billing.manage); pushed to the Stripe customer when there is one.
- POST …/portal/: a Stripe Billing Portal session, where finance adds or changes the card or
  bank debit Stripe charges (billing.manage).

Dunning itself changes only through Stripe's events and the dunning task.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationAPIView
from ironbowl.api.serializers import StrictSerializer
from ironbowl.billing import dunning, push, stripe_client
from ironbowl.billing.models import BillingAccount
from tenants.roles import Permission as P

TAGS = ["billing"]


class BillingAccountSerializer(serializers.ModelSerializer[BillingAccount]):
    stripe_enabled = serializers.SerializerMethodField(
        help_text="Whether this platform collects through Stripe at all."
    )
    stripe_customer = serializers.SerializerMethodField(
        help_text="Whether the organization has its Stripe customer yet (made at its first "
        "invoice, or when the billing portal is first opened)."
    )
    email = serializers.EmailField(
        help_text="The billing contact Stripe sends invoices and receipts to; empty until set "
        "(the first owner's e-mail is taken when the Stripe customer is made)."
    )
    suspended_employments = serializers.SerializerMethodField(
        help_text="Digital employees suspended for non-payment."
    )

    class Meta:
        model = BillingAccount
        fields = [
            "stripe_enabled",
            "stripe_customer",
            "email",
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

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_suspended_employments(self, account: BillingAccount) -> list[str]:
        return dunning.suspended_ids(account)


class BillingEmailSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)


class PortalSessionSerializer(serializers.Serializer[Any]):
    url = serializers.URLField(
        help_text="Stripe's page for this organization's payment methods; short-lived: open it "
        "at once. It leads back to the console's billing page."
    )


class BillingAccountView(OrganizationAPIView):
    permission_map = {"get": P.BILLING_VIEW, "put": P.BILLING_MANAGE, "patch": P.BILLING_MANAGE}

    @extend_schema(tags=TAGS, responses=BillingAccountSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The organization's billing account: in good standing, with no customer, until used."""
        account = BillingAccount.objects.for_organization(self.organization).first()
        if account is None:
            account = BillingAccount(organization=self.organization)
        return Response(BillingAccountSerializer(account).data)

    @extend_schema(
        tags=TAGS,
        request=BillingEmailSerializer,
        responses={
            200: BillingAccountSerializer,
            400: OpenApiResponse(description="`invalid`: not an e-mail address."),
            409: OpenApiResponse(description="`stripe_refused`: Stripe refused the address."),
            503: OpenApiResponse(description="`stripe_unavailable`: nothing was changed."),
        },
    )
    def put(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Set the billing e-mail; with a Stripe customer, Stripe is updated first (nothing is
        saved when it does not answer). Audited (`billing.set_email`)."""
        payload = BillingEmailSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        account = push.set_billing_email(
            self.actor, self.organization, payload.validated_data["email"]
        )
        return Response(BillingAccountSerializer(account).data)

    @extend_schema(
        tags=TAGS,
        request=BillingEmailSerializer,
        responses={200: BillingAccountSerializer},
    )
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The same as PUT: `email` is the one field that can be changed."""
        return self.put(request, *args, **kwargs)


class BillingPortalView(OrganizationAPIView):
    permission_map = {"post": P.BILLING_MANAGE}

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={
            201: PortalSessionSerializer,
            409: OpenApiResponse(
                description="`stripe_not_configured`: payments are settled outside Stripe; "
                "`stripe_refused`."
            ),
            503: OpenApiResponse(description="`stripe_unavailable`: try again."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Open Stripe's billing portal for the organization (its Stripe customer is made if it
        has none yet), to add or change the card or bank debit Stripe charges. Audited
        (`billing.open_portal`)."""
        back = request.build_absolute_uri(
            reverse("console:billing", kwargs={"org": self.organization.slug})
        )
        url = push.billing_portal_url(self.actor, self.organization, back)
        return Response(PortalSessionSerializer({"url": url}).data, status=201)
