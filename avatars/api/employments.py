"""Endpoints: employments. (Filled in by the employments slice of the HR domain.)"""

from __future__ import annotations

from rest_framework.routers import SimpleRouter


def register(router: SimpleRouter) -> None:
    """Add this slice's viewsets to the organization router."""
