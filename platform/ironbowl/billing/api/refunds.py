"""Refunds.

- POST /api/v1/billing/statements/{id}/refunds/ (and GET, its refunds): platform staff only. A
  refund is money leaving the platform, so no member of the organization — not even its owner or
  billing members — may make one; staff do, on the organization's request, the same way as the
  operators' API (a signed-in user with `is_staff`; API keys never). Audited in the statement's
  organization.
- GET /api/v1/orgs/{org}/billing/refunds/: the organization's own refunds (billing.view).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.api.operators import OperatorView
from ironbowl.api.base import OrganizationViewSet
from ironbowl.api.serializers import StrictSerializer
from ironbowl.billing import refunds
from ironbowl.billing.models import Refund, RefundStatus, Statement
from tenants.errors import ConflictError
from tenants.roles import Permission as P

TAGS = ["billing"]


class RefundSerializer(serializers.ModelSerializer[Refund]):
    statement = serializers.UUIDField(source="statement_id", read_only=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "statement",
            "amount",
            "reason",
            "status",
            "stripe_refund_id",
            "failure",
            "actor_label",
            "created_at",
        ]
        read_only_fields = fields


class RefundRequestSerializer(StrictSerializer):
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0.01"), coerce_to_string=True
    )
    reason = serializers.CharField(max_length=300)


class StatementRefundsView(OperatorView, APIView):
    """A statement's refunds, for platform staff."""

    def _statement(self, statement_id: str) -> Statement:
        # Staff act across organizations: the statement is found by its id alone.
        return get_object_or_404(
            Statement.objects.unscoped_dangerously().select_related("organization"),
            pk=statement_id,
        )

    @extend_schema(tags=TAGS, responses=RefundSerializer(many=True))
    def get(self, request: Request, statement_id: str) -> Response:
        statement = self._statement(statement_id)
        rows = Refund.objects.for_organization(statement.organization).filter(statement=statement)
        return Response(RefundSerializer(rows.order_by("created_at"), many=True).data)

    @extend_schema(
        tags=TAGS,
        request=RefundRequestSerializer,
        responses={
            201: RefundSerializer,
            202: OpenApiResponse(
                RefundSerializer, description="Stripe did not answer: pending, retried."
            ),
            400: OpenApiResponse(description="refund_exceeds_charge, or a field."),
            409: OpenApiResponse(
                description="not_paid_through_stripe, stripe_not_configured, stripe_refused."
            ),
        },
    )
    def post(self, request: Request, statement_id: str) -> Response:
        """Refund part or all of what was paid on the statement, through Stripe."""
        statement = self._statement(statement_id)
        payload = RefundRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        refund = refunds.refund_statement(
            self.staff_actor,
            statement,
            payload.validated_data["amount"],
            payload.validated_data["reason"],
        )
        if refund.status == RefundStatus.FAILED:
            raise ConflictError("stripe_refused", refund.failure)
        pending = refund.status == RefundStatus.PENDING
        answer = status.HTTP_202_ACCEPTED if pending else status.HTTP_201_CREATED
        return Response(RefundSerializer(refund).data, status=answer)


class RefundViewSet(mixins.ListModelMixin, OrganizationViewSet):
    """The organization's refunds, newest first."""

    model = Refund
    serializer_class = RefundSerializer
    ordering_fields = ["created_at"]
    permission_map = {"list": P.BILLING_VIEW}

    @extend_schema(tags=TAGS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
