"""Every console page of an organization, probed from another organization.

The walk finds every route under /console/o/<org>/ (a new page is probed without being listed
here). For each, a member (owner) of organization B:
- opens and posts to A's pages under A's slug: the same 404 as a slug that does not exist;
- opens and posts to its own slug's pages with every id of A's objects in the URL (edited by
  hand): 404 (or 405 where the page takes no such method), with none of A's ids, slug or name in
  the answer;
and A's pages opened by B's own lists show nothing of A. A's stored rows are compared column by
column before and after: no probe changed anything. Real Django stack and database; nothing is
simulated.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.api.isolation import build_world, organization_markers, organization_rows
from tests.console.conftest import without_tokens

pytestmark = pytest.mark.django_db

ORG_PREFIX = "console/o/<slug:org>/"
# Non-id URL arguments a console page may take, with a value that is valid for any organization.
PLAIN_KWARGS: dict[str, str] = {}


@dataclass(frozen=True)
class Page:
    route: str  # e.g. "console/o/<slug:org>/employees/<uuid:pk>/"
    name: str
    kwargs: tuple[tuple[str, str], ...]  # (name, converter)

    def path(self, org: str, values: dict[str, str]) -> str:
        path = "/" + self.route
        path = path.replace("<slug:org>", org)
        for name, converter in self.kwargs:
            path = path.replace(f"<{converter}:{name}>", values[name])
        return path


def _walk(patterns: list[object], prefix: str) -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name or ""


def console_pages() -> list[Page]:
    pages = []
    for route, name in _walk(get_resolver().url_patterns, ""):
        if not route.startswith(ORG_PREFIX):
            continue
        kwargs = []
        for part in route.split("<")[1:]:
            inner = part.split(">")[0]
            converter, _, kwarg = inner.partition(":")
            if kwarg and kwarg != "org":
                kwargs.append((kwarg, converter))
        pages.append(Page(route, name, tuple(kwargs)))
    return pages


def _ids_of(world) -> list[str]:
    return sorted({str(obj.pk) for obj in world.objects.values()} | set(world.url_values.values()))


def _values(page: Page, id_value: str) -> dict[str, str] | None:
    values = {}
    for name, converter in page.kwargs:
        if converter in ("uuid", "int"):
            if converter == "int" and not id_value.isdigit():
                return None
            if converter == "uuid" and not _is_uuid(id_value):
                return None
            values[name] = id_value
        elif name in PLAIN_KWARGS:
            values[name] = PLAIN_KWARGS[name]
        else:
            raise AssertionError(
                f"{page.route}: teach tests/console/test_isolation.PLAIN_KWARGS a value for {name}"
            )
    return values


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _leaks(body: bytes, markers: set[str], name: str) -> set[str]:
    text = without_tokens(body)
    found = {marker for marker in markers if marker in text}
    if name in text:
        found.add(name)
    return found


def test_the_walk_finds_the_console_pages():
    names = {page.name for page in console_pages()}
    assert {"dashboard", "employees", "stations", "roster", "board", "billing"} <= names


def test_no_page_reveals_or_touches_another_organizations_objects(org_a, org_b, console_b):
    world_a, _ = build_world(org_a), build_world(org_b)
    before = organization_rows(org_a)
    uuid_markers = {m for m in organization_markers(before)[0] if _is_uuid(m)}
    markers = uuid_markers | {org_a.slug}
    ids = _ids_of(world_a)
    failures: list[str] = []
    for page in console_pages():
        # A's slug, from B: the same 404 as no organization at all.
        own_values = {name: ids[0] for name, _ in page.kwargs}
        sample = _values(page, next((i for i in ids if _values(page, i)), ids[0]))
        if sample is None and page.kwargs:
            sample = own_values
        for method in ("get", "post"):
            response = getattr(console_b, method)(page.path(org_a.slug, sample or {}))
            if response.status_code != 404:
                failures.append(
                    f"{method.upper()} {page.route} under A's slug: {response.status_code}"
                )
        # B's slug, A's ids edited into the URL.
        if not page.kwargs:
            body = console_b.get(page.path(org_b.slug, {})).getvalue()
            if leak := _leaks(body, markers, org_a.name):
                failures.append(f"GET {page.route} (B's own page) shows A's {sorted(leak)}")
            continue
        for id_value in ids:
            values = _values(page, id_value)
            if values is None:
                continue
            path = page.path(org_b.slug, values)
            for method in ("get", "post"):
                response = getattr(console_b, method)(path)
                if response.status_code not in (404, 405):
                    failures.append(f"{method.upper()} {path}: {response.status_code}")
                elif leak := _leaks(response.getvalue(), markers, org_a.name):
                    failures.append(f"{method.upper()} {path} shows A's {sorted(leak)}")
    assert not failures, "\n".join(failures)
    assert organization_rows(org_a) == before
