"""Signals other packages listen to, so that tenants imports none of them."""

from django.dispatch import Signal

# Sent inside remove_member's transaction, before the membership row goes: packages that hold
# per-object grants for the member (e.g. station operators) drop them.
membership_removed = Signal()

# Sent inside change_member_role's transaction after the new role is saved: grants that only
# make sense for the old role (an operator's stations) are dropped.
membership_role_changed = Signal()
