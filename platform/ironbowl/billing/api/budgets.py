"""The organization's monthly budget: read it with the month's spend so far, set it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ironbowl.api.base import OrganizationAPIView
from ironbowl.api.serializers import StrictSerializer
from ironbowl.billing import budgets
from ironbowl.billing.models import Currency
from tenants.roles import Permission as P


class BudgetInputSerializer(StrictSerializer):
    """The whole budget (PUT replaces it); the currency may be left out: the plan's."""

    monthly_amount = serializers.DecimalField(min_value=Decimal(0), max_digits=14, decimal_places=2)
    currency = serializers.ChoiceField(choices=Currency.choices, required=False)
    hard_stop = serializers.BooleanField()
    exempt_public_service = serializers.BooleanField()


class BudgetSerializer(serializers.Serializer[Any]):
    monthly_amount = serializers.DecimalField(
        allow_null=True, help_text="null: no budget set.", max_digits=14, decimal_places=2
    )
    currency = serializers.ChoiceField(choices=Currency.choices)
    hard_stop = serializers.BooleanField()
    exempt_public_service = serializers.BooleanField()
    month = serializers.CharField(help_text="The organization's current month, YYYY-MM.")
    spent = serializers.DecimalField(
        help_text="The month's total so far, tax included.", max_digits=14, decimal_places=2
    )
    alerted_80 = serializers.BooleanField(help_text="The 80% alert was sent this month.")
    alerted_100 = serializers.BooleanField(help_text="The 100% alert was sent this month.")
    stopped = serializers.BooleanField(
        help_text="New non-essential work is held now (hard stop past 100%)."
    )
    updated_at = serializers.DateTimeField(allow_null=True)


class BudgetView(OrganizationAPIView):
    permission_map = {"get": P.BILLING_VIEW, "put": P.BILLING_MANAGE}

    @extend_schema(responses=BudgetSerializer)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The monthly budget against the month's spend so far (rated now), and where the
        alerts and the hard stop stand. Without a budget, `monthly_amount` is null."""
        return Response(self._state())

    @extend_schema(
        request=BudgetInputSerializer,
        responses={
            200: BudgetSerializer,
            400: OpenApiResponse(description="A field; `currency_mismatch`: not the plan's."),
        },
    )
    def put(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Set the monthly budget (not negative, in the plan's currency), whether it stops new
        work past 100%, and whether 24/7 public service is exempt; audited. The alerts are
        checked against the new amount at once."""
        payload = BudgetInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        budgets.set_budget(self.actor, self.organization, **payload.validated_data)
        return Response(self._state())

    def _state(self) -> dict[str, Any]:
        state = budgets.state_of(self.organization, timezone.now())
        budget = state.budget
        payload: dict[str, Any] = {
            "monthly_amount": None,
            "currency": state.currency,
            "hard_stop": False,
            "exempt_public_service": True,
            "month": f"{state.month:%Y-%m}",
            "spent": state.spent,
            "alerted_80": state.alerted(80),
            "alerted_100": state.alerted(100),
            "stopped": state.stopped,
            "updated_at": None,
        }
        if budget is not None:
            payload.update(
                monthly_amount=budget.monthly_amount,
                hard_stop=budget.hard_stop,
                exempt_public_service=budget.exempt_public_service,
                updated_at=budget.updated_at,
            )
        return dict(BudgetSerializer(payload).data)
