"""POST /api/v1/billing/stripe/webhook/: where Stripe delivers its events.

No session, no API key: the Stripe-Signature header (checked against STRIPE_WEBHOOK_SECRET by
the Stripe SDK) is the only credential, and the body is read raw because the signature covers
its exact bytes. Without a webhook secret configured the endpoint does not exist (404).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ironbowl.billing import webhooks

OutcomeSerializer = inline_serializer(
    "StripeWebhookOutcome",
    {
        "event": serializers.CharField(),
        "type": serializers.CharField(),
        "outcome": serializers.CharField(
            help_text="What was done: paid, past_due, subscription_…; or duplicate (seen "
            "before), stale (older than what was applied), ignored (a type we do not handle)."
        ),
    },
)


class StripeWebhookView(APIView):
    authentication_classes: list[type[Any]] = []  # the signature is the credential
    permission_classes = [permissions.AllowAny]
    parser_classes: list[type[Any]] = []  # the raw body is read as it came

    @extend_schema(
        tags=["billing"],
        request=OpenApiTypes.OBJECT,
        responses={
            200: OutcomeSerializer,
            400: OpenApiResponse(
                description="signature_invalid, signature_stale, payload_invalid, or refused: "
                "unknown_customer, unknown_invoice, organization_mismatch, statement_mismatch."
            ),
            404: OpenApiResponse(description="Stripe is not configured."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Apply one Stripe event, once (see ironbowl.billing.webhooks)."""
        if not settings.STRIPE_WEBHOOK_SECRET:
            raise NotFound(_("Stripe is not configured."))
        result = webhooks.handle(request.body, request.headers.get("Stripe-Signature"))
        return Response({"event": result.event_id, "type": result.type, "outcome": result.outcome})
