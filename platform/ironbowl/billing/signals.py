"""What billing tells other packages without importing them."""

from __future__ import annotations

from django.dispatch import Signal

# A statement was closed: its lines and totals are final. Sent once the close has committed,
# with `statement` (the closed Statement). A receiver that fails is logged and does not undo
# the close; Stripe's push listens here.
statement_closed = Signal()
