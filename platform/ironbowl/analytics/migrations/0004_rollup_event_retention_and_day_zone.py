"""Rollups remember what a recomputation must not lose.

- `Rollup.event_retention_days`: an hour row's shortest retention of the raw events it counted.
  Rows written before it existed that counted events get the shortest retention any plan had
  when this was written (30 days): their events' retention is not known, and assuming the
  shortest only means that such an hour older than that keeps its event columns when it is
  recomputed (its broadcast and GPU-seconds are still recomputed).
- `RollupZone`: the time zone an organization's day rows are cut in. Every organization that has
  day rows gets a blank one (not known), so the first rollup run after this rebuilds its days
  from its hours in its zone: days left overlapping by a zone change made before this are
  mended once.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.db.models import Q

SHORTEST_RETENTION_DAYS = 30
EVENT_COUNTS = (
    "visits",
    "unique_viewers",
    "view_samples",
    "interactions",
    "comments",
    "handoffs",
    "sessions",
    "custom_events",
)


def backfill(apps, schema_editor):
    rollup = apps.get_model("analytics", "Rollup")
    rollup_zone = apps.get_model("analytics", "RollupZone")
    counted = Q()
    for name in EVENT_COUNTS:
        counted |= Q(**{f"{name}__gt": 0})
    rollup.objects.filter(counted, grain="hour").update(
        event_retention_days=SHORTEST_RETENTION_DAYS
    )
    with_days = rollup.objects.filter(grain="day").values_list("organization_id", flat=True)
    rollup_zone.objects.bulk_create(
        [
            rollup_zone(organization_id=organization_id, time_zone="")
            for organization_id in sorted(set(with_days))
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0003_usage_append_only"),
        ("tenants", "0002_audit_append_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollup",
            name="event_retention_days",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="RollupZone",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("time_zone", models.CharField(blank=True, max_length=64)),
                ("recorded_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "organization",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.organization",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organization",), name="one_rollup_zone_per_org"
                    )
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
