import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("avatars", "0004_build_heartbeat_and_language_length"),
        ("inference", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="avatarbuild",
            name="workload",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="inference.workload",
            ),
        ),
    ]
