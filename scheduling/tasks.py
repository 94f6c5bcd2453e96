"""Background work of scheduling; thin wrappers that call a service."""

from __future__ import annotations

from celery import shared_task

from scheduling import duty, materialise


@shared_task(name="scheduling.materialise_shifts")
def materialise_shifts() -> dict[str, int]:
    """Make every active schedule's shifts up to the horizon, reserving their capacity
    (`materialise.materialise_shifts`; safe to repeat)."""
    return materialise.materialise_shifts().as_dict()


@shared_task(name="scheduling.tick")
def tick() -> dict[str, int]:
    """Advance due shifts: start, put on duty, end, miss (`duty.tick`; exactly once)."""
    result = duty.tick()
    return {"shifts": result.shifts, **result.outcomes}
