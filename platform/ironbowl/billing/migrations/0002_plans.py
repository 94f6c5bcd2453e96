"""The three plans, under the codes tenants.plans names (their quotas live there).

Prices in CNY, per month, for Chinese institutions; tax 6% (VAT on modern services). Included
usage is shared by the whole organization; past it each usage type costs its overage price per
billing unit (stream hour, 1,000 interactions, GPU hour, rendered minute). A seat is priced per
hire (the vendor's list price or a negotiated rate), not by the plan.
"""

from decimal import Decimal

from django.db import migrations

PLANS = [
    {
        "code": "trial",
        "name": "Trial",
        "platform_fee": Decimal("0.00"),
        "included_stream_hours": Decimal(20),
        "included_interactions": Decimal(5_000),
        "included_gpu_hours": Decimal(10),
        "included_rendered_minutes": Decimal(30),
        "price_stream_hour": Decimal("30.00"),
        "price_thousand_interactions": Decimal("20.00"),
        "price_gpu_hour": Decimal("25.00"),
        "price_rendered_minute": Decimal("5.00"),
    },
    {
        "code": "standard",
        "name": "Standard",
        "platform_fee": Decimal("4800.00"),
        "included_stream_hours": Decimal(300),
        "included_interactions": Decimal(100_000),
        "included_gpu_hours": Decimal(500),
        "included_rendered_minutes": Decimal(600),
        "price_stream_hour": Decimal("18.00"),
        "price_thousand_interactions": Decimal("12.00"),
        "price_gpu_hour": Decimal("16.00"),
        "price_rendered_minute": Decimal("3.00"),
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "platform_fee": Decimal("38000.00"),
        "included_stream_hours": Decimal(3_000),
        "included_interactions": Decimal(2_000_000),
        "included_gpu_hours": Decimal(8_000),
        "included_rendered_minutes": Decimal(6_000),
        "price_stream_hour": Decimal("12.00"),
        "price_thousand_interactions": Decimal("8.00"),
        "price_gpu_hour": Decimal("11.00"),
        "price_rendered_minute": Decimal("2.00"),
    },
]


def create_plans(apps, schema_editor):
    plan = apps.get_model("billing", "Plan")
    for fields in PLANS:
        code = fields["code"]
        plan.objects.update_or_create(
            code=code,
            defaults={**fields, "currency": "CNY", "tax_rate": Decimal("0.06"), "is_public": True},
        )


def remove_plans(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(code__in=[p["code"] for p in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_plans, remove_plans)]
