"""Corrections of the ledger, for platform staff.

POST /api/v1/billing/usage/{id}/reversal/ with `{"reason": …}` appends the record that cancels
usage record {id} (`usage.ensure_reversed`): 201 with the reversal, or 200 with the same reversal
when the record was reversed already (a retry makes no second one). The ledger is the bill, so,
as with refunds, no member of the organization may correct it — staff do, on its request, the
same way as the operators' API (a signed-in user with `is_staff`; API keys never). Audited in the
record's organization. A reversal of a closed month's usage is billed on the next open statement,
marked late, like any usage that arrives after its month closed.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.api.operators import OperatorView
from ironbowl.analytics import usage
from ironbowl.analytics.api.usage import UsageRecordSerializer
from ironbowl.analytics.models import UsageRecord
from ironbowl.api.serializers import StrictSerializer

TAGS = ["billing"]


class ReversalRequestSerializer(StrictSerializer):
    reason = serializers.CharField(
        max_length=usage.MAX_REASON, help_text="Why the record is reversed (audited)."
    )


class ReversalSerializer(UsageRecordSerializer):
    organization = serializers.CharField(source="organization.slug", read_only=True)

    class Meta(UsageRecordSerializer.Meta):
        fields = ["organization", *UsageRecordSerializer.Meta.fields]
        read_only_fields = fields


class UsageReversalView(OperatorView, APIView):
    """Reverse one usage record of any organization."""

    @extend_schema(
        tags=TAGS,
        request=ReversalRequestSerializer,
        responses={
            201: ReversalSerializer,
            200: OpenApiResponse(
                ReversalSerializer, description="Reversed already: the same reversal."
            ),
            400: OpenApiResponse(description="reason_required, or a field."),
            404: OpenApiResponse(description="No such usage record."),
            409: OpenApiResponse(description="reversal_not_reversible."),
        },
    )
    def post(self, request: Request, record_id: int) -> Response:
        """Append the reversing record of a usage record, with the reason."""
        # Staff act across organizations: the record is found by its id alone.
        record = get_object_or_404(
            UsageRecord.objects.unscoped_dangerously().select_related("organization"),
            pk=record_id,
        )
        payload = ReversalRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        reversal, made = usage.ensure_reversed(
            record.organization, record, payload.validated_data["reason"], self.staff_actor
        )
        answer = status.HTTP_201_CREATED if made else status.HTTP_200_OK
        return Response(ReversalSerializer(reversal).data, status=answer)
