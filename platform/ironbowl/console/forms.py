"""Console forms: validated on the server by the API's own serializers and services.

A page keeps a `Form` for each form it shows: the values typed, the errors next to each field and
those of the whole form. `validate()` runs an API serializer over the POST, so the console and the
API accept and refuse the same input with the same (translated) words; `Form.fail()` places a
service's `DomainError` next to its field. `submit_once()` makes a double submit (a second click,
a retried request) act once: every form carries a token, and a token that already acted answers
with the first submit's result.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from rest_framework import serializers

from tenants.errors import DomainError

NON_FIELD = "__all__"
SUBMIT_TOKEN = "submit_token"  # noqa: S105 - a form field's name
SUBMIT_MEMORY_S = 24 * 3600


def new_token() -> str:
    return secrets.token_urlsafe(16)


@dataclass
class Form:
    """What a form shows: values, errors by field name ("__all__" for the whole form)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    token: str = field(default_factory=new_token)

    @classmethod
    def of(cls, data: Mapping[str, Any] | None, **initial: Any) -> Form:
        """A form showing `initial`, overlaid by posted (or draft) `data`."""
        values = dict(initial)
        if data is not None:
            for name in data:
                getlist = getattr(data, "getlist", None)
                items = getlist(name) if getlist else data[name]
                if isinstance(items, list) and len(items) == 1 and getlist:
                    items = items[0]
                values[name] = items
        values.pop(SUBMIT_TOKEN, None)
        values.pop("csrfmiddlewaretoken", None)
        return cls(values=values)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def non_field_errors(self) -> list[str]:
        return self.errors.get(NON_FIELD, [])

    def add(self, name: str | None, message: str) -> None:
        self.errors.setdefault(name or NON_FIELD, []).append(str(message))

    def fail(self, error: DomainError) -> None:
        """Show a service's refusal next to the field it names (or for the whole form)."""
        self.add(error.field if error.field in self.values else None, str(error.detail))

    def value(self, name: str) -> Any:
        return self.values.get(name, "")


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {field name: [messages]}; nested fields as "a.b".

    An item of a list field has no input of its own: its errors (DRF names them by index,
    "skills.0") are the list field's ("skills"), shown next to the box the list was typed in."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if _is_index(key):
                name = prefix or NON_FIELD
            else:
                name = NON_FIELD if key in ("non_field_errors", NON_FIELD) else str(key)
                name = f"{prefix}.{name}" if prefix and name != NON_FIELD else (prefix or name)
            for inner, messages in flatten_errors(value, name).items():
                out.setdefault(inner, []).extend(messages)
    elif isinstance(detail, list):
        for item in detail:
            for inner, messages in flatten_errors(item, prefix).items():
                out.setdefault(inner, []).extend(messages)
    else:
        out.setdefault(prefix or NON_FIELD, []).append(str(detail))
    return out


def _is_index(key: object) -> bool:
    """Whether an error's key is a list item's index (DRF's ListField uses ints)."""
    return isinstance(key, int) or (isinstance(key, str) and key.isdigit())


def validate(
    serializer_class: type[serializers.BaseSerializer[Any]],
    form: Form,
    data: Any,
    **context: Any,
) -> dict[str, Any] | None:
    """Run an API serializer over posted data; its errors go into `form`. None when invalid."""
    serializer = serializer_class(data=data, context=context)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    for name, messages in flatten_errors(serializer.errors).items():
        for message in messages:
            form.add(name, message)
    return None


def submit_once(request: HttpRequest, act: Callable[[], HttpResponse]) -> HttpResponse:
    """Act on a form's POST once per submit token.

    The first POST with a token acts; while it runs, the same token is refused, and once it has
    redirected, the same token answers with that redirect. A response that is not a redirect
    (the form shown again with errors) frees the token, so the corrected form can be sent."""
    token = request.POST.get(SUBMIT_TOKEN, "")
    if not token:
        return act()
    key = f"console:submit:{request.user.pk}:{token}"
    if not cache.add(key, "", timeout=SUBMIT_MEMORY_S):
        done = cache.get(key)
        if done:
            return _redirect_again(request, done)
        response = HttpResponse(
            _("This form is already being sent. Wait a moment, then reload the page."),
            status=409,
            content_type="text/plain; charset=utf-8",
        )
        return response
    try:
        response = act()
    except BaseException:
        cache.delete(key)
        raise
    target = response.headers.get("HX-Redirect") or (
        response.headers.get("Location") if response.status_code in (301, 302, 303) else None
    )
    if target:
        cache.set(key, target, timeout=SUBMIT_MEMORY_S)
    else:
        cache.delete(key)
    return response


def _redirect_again(request: HttpRequest, target: str) -> HttpResponse:
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)
