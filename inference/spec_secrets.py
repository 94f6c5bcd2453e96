"""Credentials a workload needs, kept out of its spec.

A spec is the organization's to read (the workloads API returns it) and is stored as plain JSON,
so a credential — a live room's stream key — goes into it only as a reference,
`{"$secret": "<kind>:<id>"}`. The worker the workload is placed on receives the spec with each
reference resolved, in its assignment and nowhere else. Inference does not know what the
references name: the provider in `INFERENCE_SECRET_PROVIDER` (a function
`(organization, reference) -> str`) resolves them and raises LookupError, with a sentence a
person can act on, when it cannot.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from tenants.models import Organization

KEY = "$secret"


def reference(name: str) -> dict[str, str]:
    """How a spec names a credential."""
    return {KEY: name}


def is_reference(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {KEY} and isinstance(value[KEY], str)


def resolved(spec: Any, organization: Organization) -> Any:
    """The spec with every reference replaced by its value; LookupError when one cannot be."""
    if is_reference(spec):
        provider = import_string(settings.INFERENCE_SECRET_PROVIDER)
        value: str = provider(organization, spec[KEY])
        return value
    if isinstance(spec, dict):
        return {key: resolved(value, organization) for key, value in spec.items()}
    if isinstance(spec, list):
        return [resolved(value, organization) for value in spec]
    return spec
