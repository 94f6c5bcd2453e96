"""What the analytics endpoints read from a query string and answer: KPI figures, series,
scorecards, comparisons, ROI and outcome values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from inference.api.capacity import EARLIEST, LATEST, UtcDateTimeField
from ironbowl.analytics import kpis
from ironbowl.analytics.models import OutcomeValues
from ironbowl.api.serializers import StrictModelSerializer
from tenants.money import Currency

# --- Query strings --------------------------------------------------------------------------------


class DayOrTimeField(UtcDateTimeField):
    """A date or an ISO 8601 time; without an offset, in the organization's time zone.

    A date starts the range at its local midnight (`from`), or ends it with that day included,
    at the next local midnight (`to`).
    """

    def __init__(self, *, day_included_until_end: bool = False, **kwargs: Any) -> None:
        self.day_included_until_end = day_included_until_end
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> dt.datetime:
        text = str(value).strip()
        if len(text) == len("2026-01-31"):
            try:
                day = dt.date.fromisoformat(text)
            except ValueError:
                pass
            else:
                return self._midnight(day)
        return super().to_internal_value(value)

    def _midnight(self, day: dt.date) -> dt.datetime:
        zone: Any = timezone.get_current_timezone()
        if not EARLIEST.date() <= day < LATEST.date() - dt.timedelta(days=1):
            raise serializers.ValidationError(
                _("Give a date from %(earliest)s to %(latest)s.")
                % {"earliest": EARLIEST.year, "latest": LATEST.year - 1}
            )
        if self.day_included_until_end:
            day += dt.timedelta(days=1)
        return kpis.local_midnight(day, zone)


class RangeQuerySerializer(serializers.Serializer[Any]):
    """`from` and `to` (`from` is a Python keyword: the fields are added by name)."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["from"] = DayOrTimeField(required=False)
        fields["to"] = DayOrTimeField(required=False, day_included_until_end=True)
        return fields


class KpiQuerySerializer(RangeQuerySerializer):
    granularity = serializers.CharField(required=False, default=kpis.DAY, max_length=20)
    employment = serializers.UUIDField(required=False)
    station = serializers.UUIDField(required=False)


class CompareQuerySerializer(RangeQuerySerializer):
    by = serializers.CharField(required=False, default="employment", max_length=20)
    sort = serializers.CharField(required=False, default="visits", max_length=40)
    employment = serializers.UUIDField(required=False)
    station = serializers.UUIDField(required=False)


class RoiQuerySerializer(RangeQuerySerializer):
    employment = serializers.UUIDField(required=False)


# --- Answers --------------------------------------------------------------------------------------


class KpiFiguresSerializer(serializers.Serializer[Any]):
    visits = serializers.IntegerField()
    unique_viewers = serializers.IntegerField(
        help_text="Estimated (HyperLogLog, standard error about 1.6 %); a viewer counts once."
    )
    peak_viewers = serializers.IntegerField(
        help_text="The highest concurrent-viewer sample of one stream (employment at a station)."
    )
    average_viewers = serializers.FloatField(
        help_text="The mean concurrent-viewer sample of the streams."
    )
    interactions = serializers.IntegerField()
    handoffs = serializers.IntegerField(help_text="Interactions handed off to a person.")
    answered_share = serializers.FloatField(
        allow_null=True,
        help_text="(interactions − handoffs) / interactions; null without interactions.",
    )
    comments = serializers.IntegerField()
    sessions = serializers.IntegerField()
    broadcast_hours = serializers.FloatField()
    gpu_hours = serializers.FloatField()


class BucketSerializer(KpiFiguresSerializer):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()


class _RangeAnswerSerializer(serializers.Serializer[Any]):
    """The range the answer covers (widened to whole buckets), in the organization's zone."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()
        fields["to"] = serializers.DateTimeField(help_text="Exclusive.")
        fields["time_zone"] = serializers.CharField()
        return fields


class KpiSeriesSerializer(_RangeAnswerSerializer):
    granularity = serializers.ChoiceField(choices=kpis.GRANULARITIES)
    employment = serializers.UUIDField(allow_null=True)
    station = serializers.UUIDField(allow_null=True)
    totals = KpiFiguresSerializer()
    series = BucketSerializer(many=True)


class MoneyField(serializers.DecimalField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=24, decimal_places=2, **kwargs)


class RoiFieldsSerializer(serializers.Serializer[Any]):
    currency = serializers.ChoiceField(choices=Currency.choices)
    seat_days = serializers.IntegerField(help_text="Local days active × seats.")
    viewer_hours = serializers.DecimalField(max_digits=24, decimal_places=4)
    cost = MoneyField(
        help_text="At the billing plan's prices (or list rates, see `rates`); lines rounded to "
        "cents."
    )
    value = MoneyField(help_text="Outcomes at the organization's outcome values.")
    net = MoneyField(help_text="value − cost.")
    roi = serializers.DecimalField(
        max_digits=24,
        decimal_places=4,
        allow_null=True,
        help_text="(value − cost) / cost; null without cost or before outcome values are set.",
    )


class ScorecardSerializer(KpiFiguresSerializer, RoiFieldsSerializer):
    employment = serializers.UUIDField()
    name = serializers.CharField(help_text="The avatar's name (Chinese, else English).")
    position = serializers.CharField(help_text="The position's title.")
    status = serializers.CharField(help_text="The employment's status now.")
    visits_per_broadcast_hour = serializers.FloatField(allow_null=True)
    interactions_per_broadcast_hour = serializers.FloatField(allow_null=True)


class ScorecardsSerializer(_RangeAnswerSerializer):
    results = ScorecardSerializer(many=True)


class ComparedSerializer(KpiFiguresSerializer):
    id = serializers.UUIDField(allow_null=True, help_text="null: not attributed to one.")
    name = serializers.CharField(allow_null=True)
    position = serializers.CharField(allow_null=True, help_text="Employments only.")


class CompareSerializer(_RangeAnswerSerializer):
    by = serializers.ChoiceField(choices=["employment", "station"])
    sort = serializers.CharField()
    results = ComparedSerializer(many=True)


class LineSerializer(serializers.Serializer[Any]):
    item = serializers.CharField(
        help_text="Cost: seat_days or a usage type; outcome: visits, interactions, "
        "viewer_hours, answered_without_person."
    )
    quantity = serializers.DecimalField(max_digits=30, decimal_places=6)
    unit = serializers.DecimalField(max_digits=24, decimal_places=6, help_text="Price or value.")
    amount = MoneyField()


class RoiSerializer(_RangeAnswerSerializer, RoiFieldsSerializer):
    employment = serializers.UUIDField(allow_null=True)
    values_set = serializers.BooleanField(
        help_text="Whether the organization has set what its outcomes are worth."
    )
    rates = serializers.CharField(
        help_text="`billing`: priced by the organization's billing plan; `list`: the list "
        "rates (the plan bills in another currency)."
    )
    kpis = KpiFiguresSerializer()
    costs = LineSerializer(many=True)
    outcomes = LineSerializer(many=True)


class OutcomeValuesSerializer(StrictModelSerializer):
    """What the organization's outcomes are worth, in its currency (all fields on PUT)."""

    currency = serializers.ChoiceField(choices=Currency.choices)
    updated_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="null: never set (the defaults)."
    )

    class Meta:
        model = OutcomeValues
        fields = [
            "currency",
            "per_visit",
            "per_interaction",
            "per_viewer_hour",
            "per_handoff_avoided",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]
        extra_kwargs = {
            name: {"required": True, "min_value": Decimal(0)}
            for name in ("per_visit", "per_interaction", "per_viewer_hour", "per_handoff_avoided")
        }
