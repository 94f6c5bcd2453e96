"""Credentials a workload needs, kept out of its spec.

A spec is the organization's to read (the workloads API returns it) and is stored as plain JSON,
so a credential — a live room's stream key — goes into it only as a reference,
`{"$secret": "<kind>:<id>"}`. The worker the workload is placed on receives the spec with the
reference resolved, in its assignment and nowhere else.

Only the platform names credentials: a spec sent to the API may hold no reference anywhere
(`names_credential`), and a reference is resolved only in a workload the platform submitted
(`Workload.platform_submitted`, which no client can set) and only at the place the platform puts
one (`PLACES`: a live stream's push URL). A reference anywhere else would hand the key to
whatever the pipeline does with that value: speak it, or write it into a failure's reason.

Inference does not know what the references name: the provider in `INFERENCE_SECRET_PROVIDER`
(a function `(organization, reference) -> str`) resolves them and raises LookupError, with a
sentence a person can act on, when it cannot.
"""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from inference.models import Workload, WorkloadKind
from tenants.models import Organization

KEY = "$secret"
# Where, by workload kind, a spec of the platform's may name a credential: paths of keys.
PLACES: dict[str, tuple[tuple[str, ...], ...]] = {WorkloadKind.LIVE: (("outputs", "rtmp_url"),)}


def reference(name: str) -> dict[str, str]:
    """How a spec names a credential."""
    return {KEY: name}


def is_reference(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {KEY} and isinstance(value[KEY], str)


def names_credential(spec: Any) -> bool:
    """Whether any object in the spec, at any depth, has the reference's key."""
    if isinstance(spec, dict):
        return KEY in spec or any(names_credential(value) for value in spec.values())
    if isinstance(spec, list):
        return any(names_credential(value) for value in spec)
    return False


def value_of(organization: Organization, name: str) -> str:
    """The credential a reference names; LookupError, saying what to do, when it cannot be had."""
    provider = import_string(settings.INFERENCE_SECRET_PROVIDER)
    value: str = provider(organization, name)
    return value


def for_worker(workload: Workload) -> dict[str, Any]:
    """The spec the workload's worker receives: for a workload the platform submitted, the
    reference at each of its kind's `PLACES` replaced by its value; anything else as stored.
    LookupError when a reference cannot be resolved."""
    spec: dict[str, Any] = workload.spec
    places = PLACES.get(workload.kind, ()) if workload.platform_submitted else ()
    given = copy.deepcopy(spec) if places else spec
    for *parents, name in places:
        holder: Any = given
        for key in parents:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and is_reference(holder.get(name)):
            holder[name] = value_of(workload.organization, holder[name][KEY])
    return given
