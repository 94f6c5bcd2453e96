"""What billing hears from the other packages (connected in BillingConfig.ready)."""

from typing import Any

from django.dispatch import receiver

from inference.signals import usage_reported
from ironbowl.billing import budgets, push
from ironbowl.billing.models import Statement
from ironbowl.billing.signals import statement_closed


@receiver(statement_closed, dispatch_uid="billing.stripe_invoice_for_closed_statement")
def invoice_closed_statement(sender: Any, statement: Statement, **kwargs: Any) -> None:
    """With Stripe configured, the closed statement waits to be invoiced (`billing.sync_stripe`
    pushes it); this only writes our pending mirror, so the close never waits on Stripe."""
    push.statement_closed(statement)


# Usage just recorded may cross a budget's threshold: check soon (at most once a minute per
# organization) rather than wait for the 15-minute sweep.
usage_reported.connect(budgets.on_usage_reported, dispatch_uid="billing.check_budget_soon")
