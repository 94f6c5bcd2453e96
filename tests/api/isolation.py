"""Walks the organization API's routes and builds each organization's objects to probe them with.

Shared by the isolation, schema fuzz and query-count tests. The registries below are the one place
a new endpoint's model or URL argument must be taught to the tests; a route whose model or URL
argument is missing makes the isolation test fail with a message saying what to add, so a new
endpoint cannot silently escape the cross-organization probes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

from django.apps import apps
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_filters import filters as django_filters
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.schemas.generators import EndpointEnumerator

from avatars.models import (
    Avatar,
    AvatarBuild,
    AvatarVersion,
    Consent,
    Employment,
    KnowledgeDocument,
    KnowledgeEntry,
    PerformanceReview,
    Position,
    Upload,
)
from inference import services as inference_services
from inference.models import Reservation, WorkerPool, Workload
from ironbowl.analytics.models import UsageRecord
from ironbowl.api.base import CatalogViewSet
from ironbowl.billing.models import Notification, Refund, Statement
from scheduling import services as scheduling_services
from scheduling.models import Holiday, HolidayCalendar, Schedule, Shift, Station
from tenants.audit import SYSTEM
from tenants.models import ApiKey, AuditEntry, Invitation, Membership, Organization
from tenants.roles import Role
from tests import factories
from tests.avatars import factories as avatar_factories
from tests.scheduling import duty_world

ORG_ROUTE_PREFIX = "api/v1/orgs/<slug:org>/"
BODY_METHODS = ("post", "put", "patch")
EVERY_METHOD = ("get", "post", "put", "patch", "delete", "head", "options")


# --- Registries: teach the tests about a new model or URL argument here. --------------------------


def _member(organization: Organization) -> Membership:
    return cast(
        Membership, factories.MembershipFactory(organization=organization, role=Role.ANALYST)
    )


def _invitation(organization: Organization) -> Invitation:
    return cast(Invitation, factories.InvitationFactory(organization=organization))


def _api_key(organization: Organization) -> ApiKey:
    return factories.make_api_key(organization)[0]


def _audit_entry(organization: Organization) -> AuditEntry:
    return cast(AuditEntry, factories.AuditEntryFactory(organization=organization))


def _station(organization: Organization) -> Station:
    return cast(Station, factories.StationFactory(organization=organization))


def _made(factory_class: Any, **kwargs: Any) -> models.Model:
    return cast(models.Model, factory_class(**kwargs))


def _by_avatar(factory_class: Any) -> Callable[[Organization], models.Model]:
    # These factories take their organization from their avatar's.
    return lambda organization: _made(factory_class, avatar__organization=organization)


def _workload(organization: Organization) -> models.Model:
    # Pools are the platform's, shared by every organization: one for all probes.
    pool, _created = WorkerPool.objects.get_or_create(
        name="probe-live",
        defaults={
            "pipeline": "live",
            "gpu_class": "cpu",
            "gpus_per_worker": 0,
            "slots_per_worker": 2,
            "image": "local",
            "maximum": 2,
        },
    )
    workload, _new = inference_services.submit(
        organization, kind="live", spec={"probe": True}, pool_name=pool.name
    )
    return workload


def _reservation(organization: Organization) -> models.Model:
    starts_at = timezone.now().replace(microsecond=0) + dt.timedelta(days=1)
    return Reservation.objects.create(
        organization=organization,
        gpu_class="cpu",
        slots=1,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
        holder=f"probe:{uuid.uuid4()}",
    )


def _shift(organization: Organization) -> models.Model:
    # A live room's planned shift tomorrow, made directly (tests/scheduling/duty_world.py).
    starts_at = timezone.now().replace(microsecond=0) + dt.timedelta(days=1)
    return duty_world.live_shift(organization, starts_at)


def _schedule(organization: Organization) -> models.Model:
    # Made directly, weekday evenings at its own live room (nothing to conflict with).
    return duty_world.schedule(duty_world.hire(organization), duty_world.station(organization))


def _holiday_calendar(organization: Organization) -> models.Model:
    return HolidayCalendar.objects.create(
        organization=organization, name=f"Holidays {uuid.uuid4().hex[:8]}"
    )


def _holiday(organization: Organization) -> models.Model:
    calendar = _holiday_calendar(organization)
    day = timezone.localdate() + dt.timedelta(days=400)
    return Holiday.objects.create(
        organization=organization, calendar=calendar, date=day, kind="holiday", name="Probe"
    )


def _usage_record(organization: Organization) -> models.Model:
    # An id far above every table's sequence: the leak check reads each integer "id" of
    # organization A's rows, of any table, and B's record could otherwise share one by chance.
    # bulk_create: save() refuses a ledger row built with an id (it could overwrite another).
    (record,) = UsageRecord.objects.for_organization(organization).bulk_create(
        [
            UsageRecord(
                id=2**40 + uuid.uuid4().int % 2**40,
                organization=organization,
                source_id=f"probe:{uuid.uuid4()}",
                usage_type="gpu_seconds",
                quantity="1.5",
                gpu_class="l4",
                occurred_at=timezone.now(),
            )
        ]
    )
    return record


def _notification(organization: Organization) -> models.Model:
    return Notification.objects.create(
        organization=organization, kind="budget_80", message="80% of the budget is spent."
    )


def _refund(organization: Organization) -> models.Model:
    # Refunds of one closed statement of the organization (one statement a month).
    statement, _new = Statement.objects.for_organization(organization).get_or_create(
        organization=organization,
        period=dt.date(2020, 1, 1),
        defaults={"currency": "CNY", "status": "closed"},
    )
    return Refund.objects.create(
        organization=organization,
        statement=statement,
        amount="1.00",
        reason="Probe",
        status="succeeded",
        actor_label="staff@example.org",
    )


def _statement(organization: Organization) -> models.Model:
    # An open statement of a month long past, one more month back in time at each call (the
    # query-count test lists thirty of them; one statement a month).
    taken = Statement.objects.for_organization(organization).count()
    return Statement.objects.create(
        organization=organization,
        period=dt.date(2001 + taken // 12, taken % 12 + 1, 1),
        currency="CNY",
    )


def _avatar(organization: Organization) -> models.Model:
    # Built, with a portrait on disk (under the test's MEDIA_ROOT): every avatar route answers.
    return avatar_factories.with_portrait(avatar_factories.ready_avatar(organization=organization))


# model -> makes one row of that model in the given organization (avatars are private: a public
# avatar is meant to be seen by every organization, in the talent market)
OBJECT_MAKERS: dict[type[models.Model], Callable[[Organization], models.Model]] = {
    Organization: lambda organization: organization,
    Membership: _member,
    Invitation: _invitation,
    ApiKey: _api_key,
    AuditEntry: _audit_entry,
    Station: _station,
    Avatar: _avatar,
    Upload: lambda organization: _made(avatar_factories.UploadFactory, organization=organization),
    Consent: _by_avatar(avatar_factories.ConsentFactory),
    AvatarVersion: _by_avatar(avatar_factories.AvatarVersionFactory),
    AvatarBuild: _by_avatar(avatar_factories.AvatarBuildFactory),
    Position: lambda organization: _made(
        avatar_factories.PositionFactory, organization=organization
    ),
    Employment: lambda organization: _made(
        avatar_factories.EmploymentFactory, organization=organization
    ),
    KnowledgeEntry: lambda organization: _made(
        avatar_factories.KnowledgeEntryFactory, organization=organization
    ),
    KnowledgeDocument: lambda organization: _made(
        avatar_factories.KnowledgeDocumentFactory, organization=organization
    ),
    PerformanceReview: lambda organization: _made(
        avatar_factories.PerformanceReviewFactory, employment__organization=organization
    ),
    Workload: _workload,
    Reservation: _reservation,
    Shift: _shift,
    Schedule: _schedule,
    HolidayCalendar: _holiday_calendar,
    Holiday: _holiday,
    UsageRecord: _usage_record,
    Notification: _notification,
    Refund: _refund,
    Statement: _statement,
}


def _granted_operator(world: World) -> models.Model:
    station = world.objects[Station]
    assert isinstance(station, Station)
    operator = cast(
        Membership,
        factories.MembershipFactory(organization=world.organization, role=Role.OPERATOR),
    )
    return scheduling_services.grant_station_operator(SYSTEM, station, operator)


@dataclasses.dataclass(frozen=True)
class UrlKwarg:
    model: type[models.Model]
    make: Callable[[World], models.Model]


# URL argument (other than `org` and the view's lookup) -> the row it names, given the org's objects
URL_KWARG_MAKERS: dict[str, UrlKwarg] = {
    "member_id": UrlKwarg(Membership, _granted_operator),
}


def _published_avatar(organization: Organization) -> models.Model:
    avatar = avatar_factories.ready_avatar(organization=organization, visibility="public")
    return avatar_factories.with_portrait(avatar)


# Catalog routes (views on ironbowl.api.base.CatalogViewSet: the talent market) show every
# organization the rows their owners published. The probes keep using each organization's
# OBJECT_MAKERS row, which is not published and must stay as invisible to the other organization
# as a missing one; the positive controls look for a row that a third organization published.
# model -> publishes one row of that model in the given organization
PUBLISHED_MAKERS: dict[type[models.Model], Callable[[Organization], models.Model]] = {
    Avatar: _published_avatar,
}


def is_catalog(route: OrgRoute) -> bool:
    view = route.view_class
    return isinstance(view, type) and issubclass(view, CatalogViewSet)


def published_elsewhere(route: OrgRoute) -> models.Model:
    """A row of the route's model published by a third organization, for positive controls."""
    vendor = cast(Organization, factories.OrganizationFactory(kind="vendor"))
    return PUBLISHED_MAKERS[route.model](vendor)


def catalog_url_kwargs(route: OrgRoute, world: World, published: models.Model) -> dict[str, str]:
    """The world's URL arguments, with the catalog row named by the lookup (if the route has it)."""
    kwargs = world.url_kwargs(route)
    if route.lookup_kwarg in kwargs:
        kwargs[route.lookup_kwarg] = str(published.pk)
    return kwargs


# --- Routes ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OrgRoute:
    """One URL pattern under /api/v1/orgs/<org>/ and the view behind it."""

    name: str | None
    regex_text: str
    callback: Any
    kwarg_names: tuple[str, ...]

    def __str__(self) -> str:
        return self.name or self.regex_text

    @property
    def view_class(self) -> Any:
        return self.callback.cls

    @property
    def actions(self) -> dict[str, str]:
        """HTTP method -> viewset action; for a plain APIView, method -> method."""
        cls = self.view_class
        mapping = getattr(self.callback, "actions", None)
        if mapping is None:
            mapping = {m: m for m in cls.http_method_names if m != "options" and hasattr(cls, m)}
        # DRF adds "head" to a viewset's mapping on its first request: leave it to `methods`.
        return {
            m: a
            for m, a in mapping.items()
            if m in cls.http_method_names and m not in ("head", "options")
        }

    @property
    def methods(self) -> list[str]:
        """The methods the route answers, HEAD and OPTIONS included."""
        methods = list(self.actions)
        allowed = self.view_class.http_method_names
        if "get" in methods and "head" in allowed and "head" not in methods:
            methods.append("head")
        if "options" in allowed:
            methods.append("options")
        return methods

    @property
    def model(self) -> type[models.Model]:
        # A view without a model (an APIView of the organization itself) acts on the organization.
        model: type[models.Model] = getattr(self.view_class, "model", Organization)
        return model

    @property
    def lookup_kwarg(self) -> str:
        cls = self.view_class
        return str(getattr(cls, "lookup_url_kwarg", None) or getattr(cls, "lookup_field", "pk"))

    @property
    def object_kwargs(self) -> tuple[str, ...]:
        return tuple(name for name in self.kwarg_names if name != "org")

    @property
    def is_list(self) -> bool:
        return self.actions.get("get") == "list"

    @property
    def openapi_path(self) -> str:
        path = EndpointEnumerator().get_path_from_regex(self.regex_text)
        return path.replace("{pk}", "{id}")

    def path(self, org_slug: str, **kwargs: str) -> str:
        return reverse(self.name, kwargs={"org": org_slug, **kwargs})

    def request_serializer(self, method: str) -> serializers.BaseSerializer[Any] | None:
        """The serializer of the request body, as the OpenAPI schema sees it (None if none)."""
        if method not in BODY_METHODS or method not in self.actions:
            return None
        view = _SCHEMA_GENERATOR.create_view(self.callback, method.upper())
        schema = view.schema
        schema.method = method.upper()
        schema.path = self.openapi_path
        found = schema.get_request_serializer()
        if isinstance(found, dict):  # per media type
            found = next(iter(found.values()), None)
        if isinstance(found, type):
            found = found()
        return found if isinstance(found, serializers.BaseSerializer) else None


# Views made by a generator refer back to it weakly: keep one alive.
_SCHEMA_GENERATOR = SchemaGenerator()


def _walk(patterns: list[Any], prefix: str, kwargs: tuple[str, ...]) -> Iterator[OrgRoute]:
    for pattern in patterns:
        regex_text = prefix + str(pattern.pattern)
        names = kwargs + tuple(pattern.pattern.regex.groupindex)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, regex_text, names)
        elif isinstance(pattern, URLPattern) and regex_text.startswith(ORG_ROUTE_PREFIX):
            yield OrgRoute(pattern.name, regex_text, pattern.callback, names)


def org_routes() -> list[OrgRoute]:
    """Every route under /api/v1/orgs/<org>/, found by walking the URL configuration."""
    return list(_walk(get_resolver().url_patterns, "", ()))


def missing_registrations(route: OrgRoute) -> list[str]:
    """What a developer must add before the route can be probed; empty when nothing is missing."""
    problems = []
    where = "tests/api/isolation.py"
    if route.name is None:
        problems.append(f"{route.regex_text}: give the route a name so tests can reverse it")
    if route.model not in OBJECT_MAKERS:
        problems.append(
            f"{route}: no way to create a {route.model.__name__} for the isolation probes; "
            f"add it to OBJECT_MAKERS in {where}"
        )
    for name in route.object_kwargs:
        if name != route.lookup_kwarg and name not in URL_KWARG_MAKERS:
            problems.append(
                f"{route}: URL argument {name!r} is unknown to the isolation probes; "
                f"add it to URL_KWARG_MAKERS in {where}"
            )
    if is_catalog(route) and route.model not in PUBLISHED_MAKERS:
        problems.append(
            f"{route}: a catalog route needs a way to publish a {route.model.__name__}; "
            f"add it to PUBLISHED_MAKERS in {where}"
        )
    return problems


# --- Each organization's objects ------------------------------------------------------------------


@dataclasses.dataclass
class World:
    """One organization with one object of every registered model and every URL argument."""

    organization: Organization
    objects: dict[type[models.Model], models.Model] = dataclasses.field(default_factory=dict)
    url_values: dict[str, str] = dataclasses.field(default_factory=dict)

    def id_of(self, model: type[models.Model]) -> str:
        return str(self.objects[model].pk)

    def url_kwargs(self, route: OrgRoute) -> dict[str, str]:
        return {
            name: self.id_of(route.model) if name == route.lookup_kwarg else self.url_values[name]
            for name in route.object_kwargs
        }


def build_world(organization: Organization) -> World:
    world = World(organization)
    for model, make in OBJECT_MAKERS.items():
        world.objects[model] = make(organization)
    for name, kwarg in URL_KWARG_MAKERS.items():
        world.url_values[name] = str(kwarg.make(world).pk)
    return world


def nonexistent_id(model: type[models.Model]) -> str:
    """An id of the model's type that names no row."""
    if isinstance(model._meta.pk, models.UUIDField):
        return str(uuid.uuid4())
    return str(2**53 - 111)


def kwarg_model(route: OrgRoute, name: str) -> type[models.Model]:
    """The model a URL argument names (used to pick an id that names no row)."""
    if name == route.lookup_kwarg:
        return route.model
    return URL_KWARG_MAKERS[name].model


# --- Request payloads -----------------------------------------------------------------------------


class UnsupportedField(LookupError):
    """A serializer field type the payload builder does not know; teach `example_value`."""


def related_model(field: Any) -> type[models.Model] | None:
    """The model a foreign-key field of a payload points at (None for other fields)."""
    if isinstance(field, serializers.ManyRelatedField):
        field = field.child_relation
    if isinstance(field, serializers.RelatedField):
        queryset: Any = getattr(field, "queryset", None)
        model: type[models.Model] | None = getattr(field, "model", None) or getattr(
            queryset, "model", None
        )
        return model
    return None


def example_value(field: Any, related_id: Callable[[type[models.Model]], str]) -> Any:
    s = serializers
    if isinstance(field, s.ManyRelatedField | s.RelatedField):
        if isinstance(field, s.RelatedField) and not isinstance(field, s.PrimaryKeyRelatedField):
            raise UnsupportedField(type(field).__name__)
        model = related_model(field)
        assert model is not None
        value = related_id(model)
        return [value] if isinstance(field, s.ManyRelatedField) else value
    if isinstance(field, s.BaseSerializer):
        if isinstance(field, s.ListSerializer):
            return [example_value(field.child, related_id)]
        return example_payload(field, related_id)
    if isinstance(field, s.MultipleChoiceField):
        return [next(iter(field.choices))]
    if isinstance(field, s.ChoiceField):
        return next(iter(field.choices))
    if isinstance(field, s.IntegerField):
        return max(field.min_value or 1, 1)
    simple: list[tuple[type[Any], Any]] = [
        (s.BooleanField, True),
        (s.EmailField, "probe@example.org"),
        (s.URLField, "https://example.org/probe"),
        (s.SlugField, "probe"),
        (s.UUIDField, str(uuid.uuid4())),
        (s.IPAddressField, "192.0.2.1"),
        (s.CharField, f"Probe {uuid.uuid4().hex[:8]}"),
        (s.FloatField, 1.0),
        (s.DecimalField, "1"),
        (s.DateTimeField, timezone.now().isoformat()),
        (s.DateField, timezone.now().date().isoformat()),
        (s.TimeField, "12:00:00"),
        (s.DurationField, "01:00:00"),
        (s.DictField, {}),
        (s.JSONField, {}),
    ]
    for field_type, value in simple:
        if isinstance(field, field_type):
            max_length = getattr(field, "max_length", None)
            return value[:max_length] if isinstance(value, str) and max_length else value
    if isinstance(field, s.ListField):
        return [example_value(field.child, related_id)]
    raise UnsupportedField(type(field).__name__)


def example_payload(
    serializer: serializers.BaseSerializer[Any], related_id: Callable[[type[models.Model]], str]
) -> dict[str, Any]:
    """A plausible, valid-looking body for the serializer; foreign keys from `related_id`."""
    payload = {}
    fields: dict[str, Any] = getattr(serializer, "fields", {})
    for name, field in fields.items():
        if field.read_only or isinstance(field, serializers.HiddenField):
            continue
        try:
            payload[name] = example_value(field, related_id)
        except UnsupportedField as error:
            raise UnsupportedField(
                f"{type(serializer).__name__}.{name} is a {error}: teach example_value in "
                "tests/api/isolation.py to make one"
            ) from None
    return payload


# --- Filters --------------------------------------------------------------------------------------


# Routes that are not lists but take object ids in their query string (the analytics reports):
# route name -> query parameter -> the model its id names. Probed like a list's filters.
QUERY_ID_PARAMETERS: dict[str, dict[str, type[models.Model]]] = {
    "analytics-kpis": {"employment": Employment, "station": Station},
    "analytics-compare": {"employment": Employment, "station": Station},
    "analytics-roi": {"employment": Employment},
}


class _FakeRequest:
    def __init__(self, organization: Organization) -> None:
        self.organization = organization


def id_filters(route: OrgRoute, organization: Organization) -> dict[str, type[models.Model]]:
    """The list's filters that take an object id, with the model each id names."""
    found: dict[str, type[models.Model]] = dict(QUERY_ID_PARAMETERS.get(str(route), {}))
    filterset_class = getattr(route.view_class, "filterset_class", None)
    if filterset_class is None:
        return found
    for name, filter_ in filterset_class.base_filters.items():
        model: type[models.Model] | None = None
        if isinstance(filter_, django_filters.QuerySetRequestMixin):
            queryset = filter_.queryset
            if callable(queryset):
                queryset = queryset(_FakeRequest(organization))
            model = getattr(queryset, "model", None)
        else:
            field_name = (filter_.field_name or name).split("__")[0]
            filtered: type[models.Model] = filterset_class._meta.model
            try:
                model_field = filtered._meta.get_field(field_name)
            except Exception:
                model_field = None
            if model_field is not None and model_field.is_relation:
                model = cast(type[models.Model], model_field.related_model)
        if model is not None:
            found[name] = model
    return found


# --- Responses and stored rows --------------------------------------------------------------------


def body_of(response: Any) -> Any:
    content = response.getvalue()  # a streamed file (a portrait) is read to its end and closed
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def normalised(body: Any, ids: list[str]) -> str:
    """The body as JSON text with each of the given ids replaced by a placeholder."""
    text = json.dumps(body, sort_keys=True)
    for value in ids:
        text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "<id>", text)
    return text


def scalars(body: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) leaf of a JSON body."""
    if isinstance(body, dict):
        for child_key, value in body.items():
            yield from scalars(value, child_key)
    elif isinstance(body, list):
        for value in body:
            yield from scalars(value, key)
    else:
        yield key, body


def _manager(model: type[models.Model]) -> Any:
    manager: Any = model._default_manager
    unscoped = getattr(manager, "unscoped_dangerously", None)
    return unscoped() if unscoped is not None else model._base_manager.all()


def _owned_by(model: type[models.Model]) -> str | None:
    """The lookup from the model to its organization, for tenant rows and rows hanging off them."""
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is Organization:
            return field.name
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is not None:
            target = field.related_model
            if any(
                f.is_relation and f.related_model is Organization
                for f in target._meta.concrete_fields
            ):
                return f"{field.name}__organization"
    return None


def _row(obj: models.Model) -> dict[str, Any]:
    # Every concrete column: model_to_dict alone would skip non-editable ones like updated_at.
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


def organization_rows(organization: Organization) -> dict[str, list[dict[str, Any]]]:
    """Every stored row of the organization, the rows they point at, and the organization itself.

    Read with the unscoped managers, column by column, to compare before and after probes.
    """
    rows: dict[str, list[dict[str, Any]]] = {
        "tenants.organization": [_row(Organization.objects.get(pk=organization.pk))]
    }
    pointed_at: dict[type[models.Model], set[Any]] = {}
    for model in apps.get_models():
        lookup = _owned_by(model)
        if lookup is None or model is Organization:
            continue
        objects = list(_manager(model).filter(**{lookup: organization}).order_by("pk"))
        rows[model._meta.label_lower] = [_row(obj) for obj in objects]
        for field in model._meta.concrete_fields:
            target = field.related_model
            if field.is_relation and target is not None and target is not Organization:
                values = {getattr(obj, field.attname) for obj in objects} - {None}
                pointed_at.setdefault(target, set()).update(values)
    for model, pks in pointed_at.items():
        if _owned_by(model) is None:
            objects = _manager(model).filter(pk__in=pks).order_by("pk")
            rows[f"{model._meta.label_lower} (referenced)"] = [_row(obj) for obj in objects]
    return rows


def organization_markers(rows: dict[str, list[dict[str, Any]]]) -> tuple[set[str], set[str]]:
    """(uuid and slug markers found anywhere, integer ids found under an `id` key) of the rows."""
    organization = rows["tenants.organization"][0]
    anywhere = {str(organization["id"]), organization["slug"]}
    integer_ids: set[str] = set()
    for label, table in rows.items():
        if "(referenced)" in label:
            continue
        for row in table:
            value = row["id"]
            (anywhere if isinstance(value, uuid.UUID) else integer_ids).add(str(value))
    return anywhere, integer_ids


def leaked(body: Any, markers: tuple[set[str], set[str]]) -> set[str]:
    """The markers of another organization that appear in a response body."""
    anywhere, integer_ids = markers
    found = set()
    for key, value in scalars(body):
        text = str(value)
        found |= {marker for marker in anywhere if marker == text or marker in text.split()}
        found |= {marker for marker in anywhere if len(marker) == 36 and marker in text}
        if key == "id" and text in integer_ids:
            found.add(text)
    return found
