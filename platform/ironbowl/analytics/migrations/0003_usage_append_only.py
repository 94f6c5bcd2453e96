"""On PostgreSQL, a trigger makes usage records append-only for every client, not just the ORM:
the ledger billing rates is corrected by reversing records, never by changing one."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION analytics_usagerecord_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'usage records are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER analytics_usagerecord_append_only
    BEFORE UPDATE OR DELETE ON analytics_usagerecord
    FOR EACH ROW EXECUTE FUNCTION analytics_usagerecord_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS analytics_usagerecord_append_only ON analytics_usagerecord;
DROP FUNCTION IF EXISTS analytics_usagerecord_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("analytics", "0002_event_partitions")]
    operations = [migrations.RunPython(forward, backward)]
