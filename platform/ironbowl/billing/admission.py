"""The budget's hard stop, as inference's admission asks about it (`INFERENCE_ADMISSION_GATE`).

Inference does not import billing: its admission pass calls `admission_gate()` once per pass
and then asks the gate about each queued workload. The gate reads the stopped budgets in one
query, at the first question of the pass, and rates nothing: a budget is stopped when it has
`hard_stop` and its 100% alert stands for the organization's current month (see
`ironbowl.billing.budgets`).

A held workload waits in the queue with the reason "budget_exhausted" rather than failing: it
starts by itself when the budget is raised or the month turns, and nobody has to submit it
again. Only new work is held: a workload admitted before (requeued after a preemption or a
lost worker) is let through, and running work is never touched.

24/7 public service is let through when the budget exempts it — and only the work of a hire
that dunning treats as essential (`dunning.essential_posts`: an active around-the-clock
schedule), at that schedule's station: the live stream the platform itself submits for its
shifts, or a conversation session there. A workload's own `public_service` flag (its priority)
is the caller's say-so and exempts nothing, nor does a spec naming an essential hire in a
workload the platform did not write (any other live stream, a render, a build).
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone, translation
from django.utils.translation import gettext as _

from inference.models import Workload, WorkloadKind
from ironbowl.billing.budgets import local_month
from ironbowl.billing.dunning import essential_posts
from ironbowl.billing.models import Budget
from tenants.models import Organization

REASON_CODE = "budget_exhausted"


class BudgetGate:
    """One admission pass's view of the stopped budgets."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self._stopped: dict[uuid.UUID, tuple[dt.date, bool]] | None = None
        self._essential: dict[uuid.UUID, set[tuple[str, str]]] = {}

    def __call__(self, organization: Organization, workload: Workload) -> tuple[str, str] | None:
        """(reason code, sentence) when the workload must wait for the budget; else None."""
        if workload.admitted_at is not None:
            return None  # not new: it ran (or was about to) before
        stop = self._stopped_budgets().get(organization.pk)
        if stop is None:
            return None
        month, exempt_public_service = stop
        if month != local_month(organization, self.now):
            return None  # last month's stop: the month turned
        if exempt_public_service and self._serves_around_the_clock(organization, workload):
            return None
        with translation.override(organization.locale):
            reason = _(
                "Waiting: this month's budget is used up and it stops new work. It starts when "
                "the budget is raised or the month ends."
            )
        return REASON_CODE, reason

    def _serves_around_the_clock(self, organization: Organization, workload: Workload) -> bool:
        """The workload is an essential hire's work at its 24/7 post, by what the platform
        wrote: its own stream of a shift, or a session (a widget's visitor opens one there)."""
        platform_written = workload.platform_submitted and workload.kind in (
            WorkloadKind.SESSION,
            WorkloadKind.LIVE,
        )
        if not platform_written:  # a spec from the API names whatever its sender likes
            return False
        spec = workload.spec if isinstance(workload.spec, dict) else {}
        post = (str(spec.get("employment", "")), str(spec.get("station", "")))
        if organization.pk not in self._essential:
            self._essential[organization.pk] = essential_posts(organization)
        return post in self._essential[organization.pk]

    def _stopped_budgets(self) -> dict[uuid.UUID, tuple[dt.date, bool]]:
        if self._stopped is None:
            # Any organization's current month starts no earlier than the UTC month of a day ago.
            earliest = (self.now - dt.timedelta(days=1)).astimezone(dt.UTC).date().replace(day=1)
            # Cross-tenant by design: admission considers every organization's queue at once.
            self._stopped = {
                organization_id: (month, exempt)
                for organization_id, month, exempt in Budget.objects.unscoped_dangerously()
                .filter(hard_stop=True, alerted_100_for__gte=earliest)
                .values_list("organization_id", "alerted_100_for", "exempt_public_service")
                if month is not None
            }
        return self._stopped


def admission_gate() -> BudgetGate:
    """A gate for one admission pass (the setting names this function)."""
    return BudgetGate(timezone.now())
