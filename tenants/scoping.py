"""Fail-closed tenant scoping for organization-owned models.

`Model.objects.all()` raises: every query starts from an organization with
`Model.objects.for_organization(org)`. The one way around it is named so that it stands out in
review: `Model.objects.unscoped_dangerously()` (staff tools, migrations, cross-tenant jobs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.db import models

if TYPE_CHECKING:
    from tenants.models import Organization

_M = TypeVar("_M", bound=models.Model)


class UnscopedQueryError(RuntimeError):
    """A tenant-owned model was queried without an organization."""


class TenantManager(models.Manager[_M], Generic[_M]):
    def get_queryset(self) -> models.QuerySet[_M]:
        raise UnscopedQueryError(
            f"{self.model.__name__} is owned by an organization: query it with "
            f"{self.model.__name__}.objects.for_organization(org)."
        )

    def for_organization(self, organization: Organization) -> models.QuerySet[_M]:
        if organization is None or organization.pk is None:
            raise UnscopedQueryError(f"{self.model.__name__}: no organization given")
        return super().get_queryset().filter(organization=organization)

    def none(self) -> models.QuerySet[_M]:
        # An empty result reveals nothing; schema generation and empty choices rely on it.
        return super().get_queryset().none()

    def unscoped_dangerously(self) -> models.QuerySet[_M]:
        return super().get_queryset()

    def create(self, **kwargs: Any) -> _M:
        if kwargs.get("organization") is None and kwargs.get("organization_id") is None:
            raise UnscopedQueryError(f"{self.model.__name__}: created without an organization")
        obj = self.model(**kwargs)
        obj.save(force_insert=True, using=self.db)
        return obj


class TenantOwned(models.Model):
    """Abstract base for every row that belongs to one organization."""

    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="+", editable=False
    )

    objects = TenantManager()

    class Meta:
        abstract = True


class AppendOnlyError(RuntimeError):
    """Rows of an append-only table (the audit log, the usage ledger) are never changed or
    deleted; a correction is a new row."""


class AppendOnlyQuerySet(models.QuerySet[_M], Generic[_M]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")


class AppendOnlyManager(TenantManager[_M], Generic[_M]):
    def for_organization(self, organization: Organization) -> AppendOnlyQuerySet[_M]:
        if organization is None or organization.pk is None:
            raise UnscopedQueryError(f"{self.model.__name__}: no organization given")
        return AppendOnlyQuerySet(self.model, using=self._db).filter(organization=organization)

    def unscoped_dangerously(self) -> AppendOnlyQuerySet[_M]:
        return AppendOnlyQuerySet(self.model, using=self._db)


class AppendOnlyRow(TenantOwned):
    """Abstract base of append-only tables: the ORM refuses to change or delete a row (and on
    PostgreSQL a trigger, in each table's migration, refuses every client). Give the model an
    `AppendOnlyManager` of its own type as `objects`."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An instance built with an existing id would otherwise UPDATE that row in place.
        if not self._state.adding or self.pk is not None:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
