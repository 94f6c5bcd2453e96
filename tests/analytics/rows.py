"""Rollup rows written as the rollup run writes them, for tests of what reads them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from ironbowl.analytics import hll
from ironbowl.analytics.models import Rollup


def rollup(
    organization: Any,
    bucket: dt.datetime,
    *,
    grain: str = "day",
    viewers: Iterable[int] = (),
    **figures: Any,
) -> Rollup:
    """A rollup row; `viewers` are the viewer hashes its sketch saw."""
    sketch = hll.Sketch.of(list(viewers))
    return Rollup.objects.create(
        organization=organization,
        grain=grain,
        bucket=bucket.astimezone(dt.UTC),
        unique_viewers=sketch.count(),
        viewer_sketch=sketch.to_bytes(),
        **figures,
    )
