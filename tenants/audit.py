"""Who is acting, and the append-only record of what they did."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import models
from django.forms.models import model_to_dict

from tenants.models import ApiKey, AuditEntry, Organization, User


@dataclasses.dataclass(frozen=True)
class Actor:
    """The person or machine behind a change, with where the request came from."""

    user: User | None = None
    api_key: ApiKey | None = None
    role: str | None = None
    ip_address: str | None = None
    request_id: str = ""

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"api-key:{self.api_key.prefix}"
        return "system"


SYSTEM = Actor()


def snapshot(obj: models.Model, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON-safe picture of a row for the audit log's before/after."""
    links = [f for f in obj._meta.many_to_many if f.name not in exclude]
    data = model_to_dict(obj, exclude=[*exclude, *(f.name for f in links)])
    for field in links:
        data[field.name] = _linked_ids(obj, field)
    return {key: _json_safe(value) for key, value in data.items()}


def _linked_ids(obj: models.Model, field: Any) -> list[str]:
    # Read through the link table: a tenant-owned target's manager refuses an unscoped read.
    if obj.pk is None:
        return []
    through: Any = field.remote_field.through
    target = f"{field.m2m_reverse_field_name()}_id"
    rows = through._base_manager.filter(**{field.m2m_field_name(): obj.pk})
    return sorted(str(pk) for pk in rows.values_list(target, flat=True))


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, models.Model):
        return str(value.pk)
    return str(value)


def record_update(
    actor: Actor,
    organization: Organization,
    action: str,
    obj: models.Model,
    *,
    before: dict[str, Any],
) -> AuditEntry | None:
    """Audit a change of `obj` from `before`; a change that changed nothing is not recorded."""
    after = snapshot(obj)
    if after == before:
        return None
    return record(actor, organization, action, obj, before=before, after=after)


def record(
    actor: Actor,
    organization: Organization,
    action: str,
    obj: models.Model,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        organization=organization,
        actor_user_id=actor.user.pk if actor.user is not None else None,
        actor_api_key_id=actor.api_key.pk if actor.api_key is not None else None,
        actor_label=actor.label,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
        ip_address=actor.ip_address,
        request_id=actor.request_id[:64],
    )
