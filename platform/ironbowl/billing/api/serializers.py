"""Serializers of plans, subscriptions, statements and payslips. Money and quantities are exact
decimal strings, never floats."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ironbowl.billing.models import Plan, Statement, StatementLine, Subscription


class MoneyField(serializers.DecimalField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(max_digits=16, decimal_places=2, coerce_to_string=True, **kwargs)


class ExactField(serializers.DecimalField):
    """A quantity or a unit price, to six decimal places."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(max_digits=30, decimal_places=6, coerce_to_string=True, **kwargs)


class PlanSerializer(serializers.ModelSerializer[Plan]):
    platform_fee = MoneyField(help_text="Per month.")
    included_stream_hours = ExactField()
    included_interactions = ExactField()
    included_gpu_hours = ExactField()
    included_rendered_minutes = ExactField()
    price_stream_hour = ExactField()
    price_thousand_interactions = ExactField()
    price_gpu_hour = ExactField()
    price_rendered_minute = ExactField()
    tax_rate = ExactField(help_text="A fraction: 0.06 is 6%.")

    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "currency",
            "platform_fee",
            "included_stream_hours",
            "included_interactions",
            "included_gpu_hours",
            "included_rendered_minutes",
            "price_stream_hour",
            "price_thousand_interactions",
            "price_gpu_hour",
            "price_rendered_minute",
            "tax_rate",
        ]
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer[Subscription]):
    plan: serializers.SlugRelatedField[Plan] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    plan_name = serializers.CharField(source="plan.name", read_only=True)
    discount_percent = ExactField()

    class Meta:
        model = Subscription
        fields = ["id", "plan", "plan_name", "starts_at", "ends_at", "discount_percent"]
        read_only_fields = fields


class SubscriptionsSerializer(serializers.Serializer[Any]):
    current = SubscriptionSerializer()
    history = SubscriptionSerializer(many=True, help_text="Oldest first, the current one last.")


class ChangePlanSerializer(serializers.Serializer[Any]):
    plan = serializers.SlugField(help_text="The code of a public plan, e.g. standard.")


class StatementLineSerializer(serializers.ModelSerializer[StatementLine]):
    quantity = ExactField(help_text="Billed (past the allowance), in `unit`.")
    used = ExactField(help_text="Before the plan's allowance; seats: seat-days.")
    included = ExactField(help_text="Covered by the plan's allowance.")
    unit_price = ExactField()
    amount = MoneyField(help_text="Rounded to the cent, half up.")
    subscription = serializers.UUIDField(source="subscription_id", allow_null=True)
    late_period = serializers.DateField(
        allow_null=True, help_text="Usage of this earlier, closed month, billed late."
    )

    class Meta:
        model = StatementLine
        fields = [
            "id",
            "kind",
            "description",
            "used",
            "included",
            "quantity",
            "unit",
            "unit_price",
            "amount",
            "late_period",
            "subscription",
        ]
        read_only_fields = fields


class StatementSerializer(serializers.ModelSerializer[Statement]):
    subtotal = MoneyField(help_text="The sum of the lines other than discounts.")
    discount = MoneyField(help_text="The sum of the discount lines, as a positive amount.")
    tax = MoneyField()
    total = MoneyField(help_text="subtotal − discount + tax.")
    amount_paid = MoneyField()
    amount_refunded = MoneyField()

    class Meta:
        model = Statement
        fields = [
            "id",
            "period",
            "status",
            "currency",
            "subtotal",
            "discount",
            "tax",
            "total",
            "amount_paid",
            "amount_refunded",
            "rated_at",
            "closed_at",
            "ledger_watermark",
        ]
        read_only_fields = fields


class PayslipSerializer(serializers.Serializer[Any]):
    employment = serializers.UUIDField(source="employment_id")
    name = serializers.CharField()
    total = MoneyField()
    lines = StatementLineSerializer(many=True)


class StatementDetailSerializer(StatementSerializer):
    payslips = serializers.SerializerMethodField()
    organization_lines = serializers.SerializerMethodField()

    class Meta(StatementSerializer.Meta):
        fields = [*StatementSerializer.Meta.fields, "payslips", "organization_lines"]
        read_only_fields = fields

    def _document(self) -> Any:
        return self.context["document"]

    @extend_schema_field(PayslipSerializer(many=True))
    def get_payslips(self, statement: Statement) -> list[dict[str, Any]]:
        return list(PayslipSerializer(self._document().payslips, many=True).data)

    @extend_schema_field(StatementLineSerializer(many=True))
    def get_organization_lines(self, statement: Statement) -> list[dict[str, Any]]:
        lines = self._document().organization_lines
        return list(StatementLineSerializer(lines, many=True).data)
