"""Signals other packages listen to, so that tenants imports none of them."""

from django.dispatch import Signal

# Sent inside remove_member's transaction, before the membership row goes: packages that hold
# per-object grants for the member (e.g. station operators) drop them.
membership_removed = Signal()
