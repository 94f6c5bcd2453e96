"""What inference tells the rest of the platform, without importing it: other packages connect
receivers (in their AppConfig.ready) and inference sends after its change has committed."""

from __future__ import annotations

from django.dispatch import Signal

from inference.models import Interaction, UsageReport, Workload
from tenants.signals import send_after_commit

# A workload changed state, or its worker reported progress. Sent once the change has
# committed, with `organization_id`, `workload_id`, `kind`, `state` and `message` (the words of
# a progress report; empty otherwise). Receivers read the workload again for the rest; a
# receiver that fails is logged and does not undo the change (nor fail the worker's request), so
# a consumer that must not miss an end also looks at ended workloads now and then.
workload_changed = Signal()

# A worker's usage report was stored: `organization_id`, `workload_id`, `usage_report_id` (the
# stored row's id). Sent once it has committed; analytics turns it into usage records (and
# sweeps for reports whose signal was lost).
usage_reported = Signal()

# A conversation's exchange was recorded: `organization_id`, `workload_id`, `interaction_id`.
# Sent once it has committed; analytics counts it as events.
interaction_recorded = Signal()

# A worker's heartbeat measured its live streams: `organization_id` and `workload_ids` (those
# whose stats were kept). Sent once the heartbeat has committed; the console pushes the numbers
# to the organization's on-air board.
stream_stats_reported = Signal()


def announce(workload: Workload, message: str = "") -> None:
    """Send `workload_changed` for this workload once the current transaction commits."""
    send_after_commit(
        workload_changed,
        Workload,
        "workload_receiver_failed",
        organization_id=workload.organization_id,
        workload_id=workload.pk,
        kind=workload.kind,
        state=workload.state,
        message=message,
    )


def announce_usage(report: UsageReport) -> None:
    """Send `usage_reported` for this stored report once the current transaction commits."""
    send_after_commit(
        usage_reported,
        UsageReport,
        "usage_receiver_failed",
        organization_id=report.organization_id,
        workload_id=report.workload_id,
        usage_report_id=report.pk,
    )


def announce_interaction(interaction: Interaction) -> None:
    """Send `interaction_recorded` for this exchange once the current transaction commits."""
    send_after_commit(
        interaction_recorded,
        Interaction,
        "interaction_receiver_failed",
        organization_id=interaction.organization_id,
        workload_id=interaction.workload_id,
        interaction_id=interaction.pk,
    )
