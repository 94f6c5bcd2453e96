"""On PostgreSQL, raw events live in a partitioned table: by retention class (LIST), then by
day (RANGE). The partitions themselves are made ahead at run time (`analytics.partitions`),
because which days they cover depends on the clock, not on the schema.

The primary key and the unique constraint hold (names as Django knows them) the partition keys, as PostgreSQL requires. The
foreign key to the organization is left out: every event is written by an ingestion that has
just resolved the organization, and a per-row check would slow COPY down for nothing.
"""

from django.db import migrations

FORWARD = """
CREATE SEQUENCE analytics_event_partitioned_id_seq AS bigint;
CREATE TABLE analytics_event_partitioned (
    LIKE analytics_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS
) PARTITION BY LIST (retention_days);
ALTER TABLE analytics_event_partitioned
    ALTER COLUMN id SET DEFAULT nextval('analytics_event_partitioned_id_seq');
DROP TABLE analytics_event;
ALTER SEQUENCE analytics_event_partitioned_id_seq RENAME TO analytics_event_id_seq;
ALTER TABLE analytics_event_partitioned RENAME TO analytics_event;
ALTER SEQUENCE analytics_event_id_seq OWNED BY analytics_event.id;
ALTER TABLE analytics_event ADD PRIMARY KEY (id, occurred_at, retention_days);
ALTER TABLE analytics_event ADD CONSTRAINT event_once
    UNIQUE (organization_id, client_event_id, occurred_at, retention_days);
CREATE INDEX analytics_e_organiz_a05f06_idx ON analytics_event (organization_id, occurred_at);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]
    # Going back would need the rows moved out of the partitions; not supported.
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
