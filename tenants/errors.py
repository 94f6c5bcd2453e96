"""Errors that services raise for people to act on; the API turns them into structured 4xx."""

from __future__ import annotations

from django.utils.functional import Promise


class DomainError(Exception):
    """A rule of the domain refused the change. Nothing was written."""

    status_code = 400

    def __init__(self, code: str, detail: str | Promise, field: str | None = None) -> None:
        super().__init__(str(detail))
        self.code = code
        self.detail = detail
        self.field = field


class ConflictError(DomainError):
    status_code = 409


class GoneError(DomainError):
    status_code = 410
