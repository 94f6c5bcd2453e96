"""Plans and the organization's subscription: GET /api/v1/orgs/{org}/billing/plans/ (the public
plans and their prices), GET and POST .../billing/subscription/ (the plan it is on, its history,
and changing plan: permission billing.manage)."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationAPIView
from ironbowl.billing import plans
from ironbowl.billing.api.serializers import (
    ChangePlanSerializer,
    PlanSerializer,
    SubscriptionsSerializer,
)
from ironbowl.billing.models import Subscription
from tenants.roles import Permission as P


class PlanListView(OrganizationAPIView):
    permission_map: ClassVar[dict[str, P]] = {"get": P.BILLING_VIEW}
    renderer_classes = [JSONRenderer]

    @extend_schema(responses=PlanSerializer(many=True))
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The plans an organization can be on: platform fee, included usage, overage prices
        per billing unit, tax rate, currency."""
        return Response(PlanSerializer(plans.public_plans(), many=True).data)


class SubscriptionView(OrganizationAPIView):
    permission_map: ClassVar[dict[str, P]] = {"get": P.BILLING_VIEW, "post": P.BILLING_MANAGE}
    renderer_classes = [JSONRenderer]

    def _answer(self, current: Subscription) -> Response:
        history = list(
            Subscription.objects.for_organization(self.organization)
            .select_related("plan")
            .order_by("starts_at")
        )
        return Response(SubscriptionsSerializer({"current": current, "history": history}).data)

    @extend_schema(responses=SubscriptionsSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The plan the organization is on now, and since when; every earlier one."""
        return self._answer(plans.ensure_subscription(self.organization))

    @extend_schema(
        request=ChangePlanSerializer,
        responses={
            200: SubscriptionsSerializer,
            400: OpenApiResponse(description="No such plan (`unknown_plan`)."),
            409: OpenApiResponse(
                description="The hires hold more seats than the plan allows "
                "(`seats_over_plan`), or the plan bills in another currency."
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Move to another plan from now: the current subscription ends and the next starts at
        this instant; this month's statement prorates the platform fee and the included usage
        of each by the part of the month it covered, and the quotas follow the new plan.
        Audited. Asking for the current plan changes nothing."""
        payload = ChangePlanSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        current = plans.change_plan(self.actor, self.organization, payload.validated_data["plan"])
        return self._answer(current)
