"""On PostgreSQL, triggers make a closed statement final for every client, not just the services:
its lines (the payslips) cannot be added, changed or removed, and its row cannot be removed nor
its billed figures changed. Only what payments and refunds move after the close may change:
`amount_paid` and `amount_refunded`. Statements close by an UPDATE of an open row, which the
trigger lets through."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION billing_statement_closed_is_final() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'closed' THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'statement % is closed and final (DELETE refused)', OLD.id;
        END IF;
        -- What says what was billed; amount_paid and amount_refunded move after the close.
        IF (NEW.organization_id, NEW.period, NEW.status, NEW.currency, NEW.subtotal,
            NEW.discount, NEW.tax, NEW.total, NEW.ledger_watermark, NEW.rated_at, NEW.closed_at)
            IS DISTINCT FROM
           (OLD.organization_id, OLD.period, OLD.status, OLD.currency, OLD.subtotal,
            OLD.discount, OLD.tax, OLD.total, OLD.ledger_watermark, OLD.rated_at, OLD.closed_at)
        THEN
            RAISE EXCEPTION 'statement % is closed and final (UPDATE of its figures refused)',
                OLD.id;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_statement_closed_is_final
    BEFORE UPDATE OR DELETE ON billing_statement
    FOR EACH ROW EXECUTE FUNCTION billing_statement_closed_is_final();

CREATE OR REPLACE FUNCTION billing_statement_is_closed(statement uuid) RETURNS boolean AS $$
    SELECT EXISTS (SELECT 1 FROM billing_statement WHERE id = statement AND status = 'closed');
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION billing_statementline_closed_is_final() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF billing_statement_is_closed(OLD.statement_id) THEN
            RAISE EXCEPTION 'statement % is closed: its lines are final (% refused)',
                OLD.statement_id, TG_OP;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF billing_statement_is_closed(NEW.statement_id) THEN
            RAISE EXCEPTION 'statement % is closed: its lines are final (% refused)',
                NEW.statement_id, TG_OP;
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_statementline_closed_is_final
    BEFORE INSERT OR UPDATE OR DELETE ON billing_statementline
    FOR EACH ROW EXECUTE FUNCTION billing_statementline_closed_is_final();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS billing_statementline_closed_is_final ON billing_statementline;
DROP FUNCTION IF EXISTS billing_statementline_closed_is_final();
DROP FUNCTION IF EXISTS billing_statement_is_closed(uuid);
DROP TRIGGER IF EXISTS billing_statement_closed_is_final ON billing_statement;
DROP FUNCTION IF EXISTS billing_statement_closed_is_final();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_plans")]
    operations = [migrations.RunPython(forward, backward)]
