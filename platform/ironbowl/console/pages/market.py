"""The talent market and hiring: browse and filter avatars, preview one, open a position, hire, and
finish the new hire's onboarding checklist (persona, voice, knowledge) until it is active.

Every query starts from the organization or from the market's own selectors (`avatars.market`),
every form is validated by the API's serializers and acted on by the services the API calls.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars import employments, knowledge, market
from avatars import positions as position_services
from avatars.api.employments import (
    EmploymentUpdateSerializer,
    HireSerializer,
    KnowledgeSerializer,
    TransitionSerializer,
    VoiceSerializer,
)
from avatars.api.knowledge import KnowledgeEntrySerializer
from avatars.api.market import LIST_FIELDS, MarketAvatarFilter
from avatars.api.positions import PositionSerializer
from avatars.models import (
    Avatar,
    Employment,
    EmploymentStatus,
    KnowledgeDocument,
    KnowledgeEntry,
    Position,
    Skill,
)
from avatars.positions import missing_requirements
from ironbowl.console.base import OrganizationPage
from ironbowl.console.files import portrait_response
from ironbowl.console.forms import Form, submit_once, validate
from ironbowl.console.inputs import as_list, items_of
from ironbowl.console.paging import page_of
from tenants.errors import DomainError
from tenants.roles import Permission

PAGE_SIZE = 24
POSITIONS_PAGE_SIZE = 50
# The newest knowledge offered for attaching; more are attached through the API.
KNOWLEDGE_CHOICES = 200

SORTS: dict[str, tuple[tuple[str, ...], Any]] = {
    "newest": (("-created_at", "-id"), gettext_lazy("Newest first")),
    "price": (("list_price", "id"), gettext_lazy("Price: low to high")),
    "-price": (("-list_price", "-id"), gettext_lazy("Price: high to low")),
    "name": (("name_zh", "id"), gettext_lazy("Chinese name")),
}


# --- Small helpers ------------------------------------------------------------------------------


def lines_of(text: object) -> list[str]:
    """Non-empty lines of a textarea (the ways a question is asked)."""
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def filled(post: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The named fields the person filled in: a blank one is left out, so a required field
    answers "This field is required." and an optional one keeps its default."""
    return {name: post[name] for name in names if str(post.get(name, "")).strip()}


def skill_options(chosen: object) -> list[tuple[str, str, bool]]:
    wanted = set(as_list(chosen))
    return [(str(value), str(label), value in wanted) for value, label in Skill.choices]


def skill_labels(skills: Iterable[str]) -> list[str]:
    labels = dict(Skill.choices)
    return [str(labels.get(skill, skill)) for skill in skills]


def position_label(position: Position, notes: list[str]) -> str:
    """A position as a choice: its title and department, then what to know before choosing it,
    with each language's own brackets and separators."""
    label = position.title
    if position.department:
        label = _("%(title)s · %(department)s") % {
            "title": position.title,
            "department": position.department,
        }
    if not notes:
        return label
    joined = functools.reduce(
        lambda first, second: _("%(first)s; %(second)s") % {"first": first, "second": second},
        notes,
    )
    return _("%(position)s (%(notes)s)") % {"position": label, "notes": joined}


def fill_from_errors(form: Form, errors: Mapping[str, Iterable[str]]) -> None:
    for name, messages_ in errors.items():
        for message in messages_:
            form.add(None if name == "__all__" else name, str(message))


class MarketPage(OrganizationPage):
    section = "market"

    def show(self, context: dict[str, Any], status: int = 200) -> HttpResponse:
        return TemplateResponse(self.request, self.get_template_names(), context, status=status)

    def visible_avatars(self) -> QuerySet[Avatar]:
        """What a member may preview: the market, and the organization's own avatars for a role
        that may see them (another organization's private avatar answers 404)."""
        if self.may(Permission.AVATARS_VIEW):
            rows = employments.hireable_avatars(self.organization)
        else:
            rows = market.market_avatars()
        return rows.select_related("organization", "current_version")

    def visible_avatar(self, pk: Any) -> Avatar:
        avatar = self.visible_avatars().filter(pk=pk).first()
        if avatar is None:
            raise Http404(_("No such avatar."))
        return avatar

    def portrait_url(self, avatar: Avatar) -> str | None:
        version = avatar.current_version
        if version is None or not version.portrait:
            return None
        return self.url("console:market-portrait", avatar.pk)


# --- Browsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    avatar: Avatar
    portrait_url: str | None
    skills: list[str]


class Browse(MarketPage):
    """The talent market: filters (words, skills, languages, price), sorted, a page at a time."""

    template_name = "console/market/browse.html"
    permissions = {"get": Permission.MARKET_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        query = self.request.GET
        form = Form.of(query)
        sort = query.get("sort", "newest")
        if sort not in SORTS:
            sort = "newest"
        filters = MarketAvatarFilter(
            data=_filter_data(query),
            queryset=market.market_avatars().only(*LIST_FIELDS),
        )
        if not filters.is_valid():
            fill_from_errors(form, filters.errors)
        rows = filters.qs.order_by(*SORTS[sort][0]) if form.ok else Avatar.objects.none()
        page = page_of(rows, query, PAGE_SIZE)
        context.update(
            form=form,
            page=page,
            cards=[Card(a, self.portrait_url(a), skill_labels(a.skills)) for a in page.object_list],
            skills=skill_options(query.getlist("skill")),
            sorts=[(key, label) for key, (_order, label) in SORTS.items()],
            sort=sort,
            filtered=any(
                query.get(name) for name in ("q", "skill", "language", "min_price", "max_price")
            ),
        )
        return context


def _filter_data(query: QueryDict) -> QueryDict:
    """The market filter's parameters from the console's query (the API's names), blanks left
    out so an empty box filters nothing."""
    data = QueryDict(mutable=True)
    for name in ("q", "language", "min_price", "max_price"):
        value = str(query.get(name) or "").strip()
        if value:
            data[name] = value
    skills = [s for s in query.getlist("skill") if s]
    if skills:
        data.setlist("skill", skills)
    return data


# --- Preview ------------------------------------------------------------------------------------


class Preview(MarketPage):
    """One avatar: portrait, a rendered sample, languages, skills, voice, and hires: the
    organization's own hires of it, and for the avatar's owner the counts across institutions
    (never who; another vendor's counts stay its own, as in the API)."""

    template_name = "console/market/preview.html"
    permissions = {"get": Permission.MARKET_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        avatar = self.visible_avatar(kwargs["pk"])
        own = avatar.organization_id == self.organization.pk
        statistics = (
            market.hire_statistics(avatar) if own and self.may(Permission.AVATARS_VIEW) else None
        )
        ours = (
            self.owned(Employment)
            .filter(avatar_id=avatar.pk)
            .select_related("position", "avatar_version")
            .order_by("-created_at")
        )
        version = avatar.current_version
        context.update(
            avatar=avatar,
            version=version,
            portrait_url=self.portrait_url(avatar),
            skills=skill_labels(avatar.skills),
            voice=version.voice_profile if version is not None else {},
            statistics=statistics,
            by_status=[
                (EmploymentStatus(status).label, statistics.hires[status], statistics.seats[status])
                for status in market.NOT_ENDED
                if statistics.hires[status]
            ]
            if statistics is not None
            else [],
            ours=[(e, self.hire_url(e)) for e in ours],
            own=own,
        )
        return context

    def hire_url(self, employment: Employment) -> str:
        if employment.status in (EmploymentStatus.OFFERED, EmploymentStatus.ONBOARDING):
            return self.url("console:hire-onboarding", employment.pk)
        return self.url("console:employee", employment.pk)


class Portrait(MarketPage):
    """The portrait PNG of an avatar's current version, for members who may preview it."""

    permissions = {"get": Permission.MARKET_VIEW}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.visible_avatar(kwargs["pk"])
        return portrait_response(avatar.current_version, _("This avatar has no portrait yet."))


# --- Positions ----------------------------------------------------------------------------------

POSITION_TEXT_FIELDS = ("title", "department", "duties", "headcount")


def filled_by_position(organization_rows: QuerySet[Employment], ids: list[Any]) -> dict[Any, int]:
    """Hires not let go per position, in one query (the count `filled_seats_of_position` makes)."""
    rows = (
        organization_rows.filter(position_id__in=ids, status__in=employments.SEAT_HOLDING)
        .values("position_id")
        .annotate(n=Count("id"))
    )
    return {row["position_id"]: row["n"] for row in rows}


class Positions(MarketPage):
    """The organization's positions, with hires against headcount and a search for candidates."""

    template_name = "console/market/positions.html"
    permissions = {"get": Permission.POSITIONS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        rows = self.owned(Position).order_by("-created_at", "-id")
        page = page_of(rows, self.request.GET, POSITIONS_PAGE_SIZE)
        positions = list(page.object_list)
        counts = filled_by_position(self.owned(Employment), [p.pk for p in positions])
        context.update(
            page=page,
            positions=[
                (p, counts.get(p.pk, 0), skill_labels(p.required_skills), _candidates_query(p))
                for p in positions
            ],
        )
        return context


def _candidates_query(position: Position) -> str:
    query = QueryDict(mutable=True)
    query.setlist("skill", list(position.required_skills))
    if position.required_languages:
        query["language"] = ", ".join(position.required_languages)
    return query.urlencode()


class NewPosition(MarketPage):
    """Open a position: title, department, duties, required languages and skills, headcount."""

    template_name = "console/market/position_new.html"
    permissions = {"get": Permission.POSITIONS_MANAGE, "post": Permission.POSITIONS_MANAGE}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        context = self.get_context_data(**kwargs)
        return self.show_form(context, Form.of(context["draft"], headcount=1))

    def show_form(self, context: dict[str, Any], form: Form, status: int = 200) -> HttpResponse:
        context.update(
            form=form,
            skills=skill_options(form.value("required_skills")),
            skill_errors=form.errors.get("required_skills", []),
        )
        return self.show(context, status=status)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, lambda: self._create(**kwargs))

    def _create(self, **kwargs: Any) -> HttpResponse:
        post = self.request.POST
        form = Form.of(post)
        payload = filled(post, POSITION_TEXT_FIELDS)
        languages = items_of(post.get("required_languages"))
        if languages:
            payload["required_languages"] = languages
        skills = [s for s in post.getlist("required_skills") if s]
        if skills:
            payload["required_skills"] = skills
        data = validate(PositionSerializer, form, payload, organization=self.organization)
        if data is not None:
            try:
                position = position_services.create_position(self.actor, self.organization, **data)
            except DomainError as error:
                form.fail(error)
            else:
                messages.success(self.request, _("Position “%(title)s” opened.") % data)
                for_avatar = _uuid_or_none(post.get("for_avatar"))
                if for_avatar is not None:
                    hire = self.url("console:hire-avatar", for_avatar)
                    return redirect(f"{hire}?position={position.pk}")
                return redirect(self.url("console:position-list"))
        return self.show_form(self.get_context_data(**kwargs), form, status=400)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        chosen = self.request.GET.get("for") or self.request.POST.get("for_avatar")
        context["for_avatar"] = _uuid_or_none(chosen)
        return context


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --- Hiring -------------------------------------------------------------------------------------

HIRE_FIELDS = ("position", "seats", "rate", "starts_on", "ends_on")


class Hire(MarketPage):
    """Hire an avatar into one of the organization's positions: seats, rate, dates."""

    template_name = "console/market/hire.html"
    permissions = {"get": Permission.EMPLOYMENTS_MANAGE, "post": Permission.EMPLOYMENTS_MANAGE}

    def hireable(self, pk: Any) -> Avatar:
        avatar = (
            employments.hireable_avatars(self.organization)
            .select_related("organization", "current_version")
            .filter(pk=pk)
            .first()
        )
        if avatar is None:
            raise Http404(_("No such avatar."))
        return avatar

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.hireable(kwargs["pk"])
        context = self.get_context_data(avatar=avatar, **kwargs)
        context["form"] = Form.of(
            context["draft"],
            position=request.GET.get("position", ""),
            seats=1,
            starts_on=employments.local_today(self.organization).isoformat(),
        )
        return self.show(context)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.hireable(kwargs["pk"])
        return submit_once(request, lambda: self._hire(avatar, **kwargs))

    def _hire(self, avatar: Avatar, **kwargs: Any) -> HttpResponse:
        post = self.request.POST
        form = Form.of(post)
        payload = {"avatar": str(avatar.pk), **filled(post, HIRE_FIELDS)}
        data = validate(HireSerializer, form, payload, organization=self.organization)
        status = 400
        if data is not None:
            try:
                employment = employments.hire_avatar(self.actor, self.organization, **data)
            except DomainError as error:
                form.fail(error)
                status = error.status_code
            else:
                messages.success(
                    self.request,
                    _("%(avatar)s is offered the position. Finish onboarding to put it to work.")
                    % {"avatar": str(avatar)},
                )
                return redirect(self.url("console:hire-onboarding", employment.pk))
        context = self.get_context_data(avatar=avatar, **kwargs)
        context["form"] = form
        return self.show(context, status=status)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        avatar: Avatar = kwargs["avatar"]
        positions = list(self.owned(Position).order_by("title", "id"))
        counts = filled_by_position(self.owned(Employment), [p.pk for p in positions])
        choices = []
        for position in positions:
            lacks_languages, lacks_skills = missing_requirements(
                position, avatar.languages, avatar.skills
            )
            notes = []
            if counts.get(position.pk, 0) >= position.headcount:
                notes.append(_("headcount filled"))
            if lacks_languages or lacks_skills:
                notes.append(
                    _("lacks %(missing)s")
                    % {"missing": ", ".join([*lacks_languages, *skill_labels(lacks_skills)])}
                )
            choices.append((str(position.pk), position_label(position, notes)))
        context.update(
            avatar=avatar,
            portrait_url=self.portrait_url(avatar),
            position_choices=choices,
            can_open_position=self.may(Permission.POSITIONS_MANAGE),
        )
        return context


# --- Onboarding ---------------------------------------------------------------------------------

STEPS = ("persona", "voice", "knowledge", "detach", "entry", "transition")
ONBOARDING = (EmploymentStatus.OFFERED, EmploymentStatus.ONBOARDING)


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    done: bool


class Onboarding(MarketPage):
    """A new hire's checklist: accept the offer, review the persona, choose a voice, attach
    knowledge, then activate. Each form posts here with its `step`."""

    template_name = "console/market/onboarding.html"
    permissions = {"get": Permission.EMPLOYMENTS_VIEW, "post": Permission.EMPLOYMENTS_MANAGE}

    def employment(self, pk: Any) -> Employment:
        employment: Employment = self.get_owned(Employment, pk)
        return employment

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        employment = self.employment(kwargs["pk"])
        context = self.get_context_data(employment=employment, **kwargs)
        draft = context["draft"]
        if draft and draft.get("step") in STEPS:
            context["forms"][draft["step"]] = Form.of(
                draft, **context["forms"][draft["step"]].values
            )
        return self.show(context)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        employment = self.employment(kwargs["pk"])
        step = request.POST.get("step", "")
        acts: dict[str, Callable[[Employment, Form], HttpResponse | None]] = {
            "persona": self._persona,
            "voice": self._voice,
            "knowledge": self._attach,
            "detach": self._detach,
            "entry": self._entry,
            "transition": self._transition,
        }
        act = acts.get(step)
        if act is None:
            raise Http404(_("No such step."))
        if step == "entry" and not self.may(Permission.KNOWLEDGE_MANAGE):
            return self.denied(Permission.KNOWLEDGE_MANAGE)

        def run() -> HttpResponse:
            form = Form.of(request.POST)
            try:
                done = act(employment, form)
            except DomainError as error:
                form.fail(error)
                done = None
                status = error.status_code
            else:
                status = 400
            if done is not None:
                return done
            context = self.get_context_data(employment=self.employment(employment.pk), **kwargs)
            context["forms"][step] = form
            return self.show(context, status=status)

        return submit_once(request, run)

    def done(self, employment: Employment, message: str, anchor: str = "") -> HttpResponse:
        messages.success(self.request, message)
        url = self.url("console:hire-onboarding", employment.pk)
        return redirect(f"{url}#{anchor}" if anchor else url)

    # Each step validates with the API's serializer, then calls the service the API calls.

    def _persona(self, employment: Employment, form: Form) -> HttpResponse | None:
        post = self.request.POST
        payload = {
            "persona": post.get("persona", ""),
            "persona_reviewed": post.get("persona_reviewed") in ("true", "on"),
        }
        data = validate(EmploymentUpdateSerializer, form, payload, organization=self.organization)
        if data is None:
            return None
        employments.update_employment(self.actor, employment, **data)
        return self.done(employment, _("Persona saved."), "persona")

    def _voice(self, employment: Employment, form: Form) -> HttpResponse | None:
        payload = filled(self.request.POST, ("voice_id", "pitch_hz", "syllables_per_second"))
        data = validate(VoiceSerializer, form, payload, organization=self.organization)
        if data is None:
            return None
        employments.update_employment(self.actor, employment, voice=data)
        return self.done(employment, _("Voice chosen."), "voice")

    def _knowledge(self, form: Form) -> dict[str, Any] | None:
        post = self.request.POST
        payload = {
            name: [v for v in post.getlist(name) if v]
            for name in ("entries", "documents")
            if any(post.getlist(name))
        }
        return validate(KnowledgeSerializer, form, payload, organization=self.organization)

    def _attach(self, employment: Employment, form: Form) -> HttpResponse | None:
        data = self._knowledge(form)
        if data is None:
            return None
        employments.attach_knowledge(self.actor, employment, **data)
        return self.done(employment, _("Knowledge attached."), "knowledge")

    def _detach(self, employment: Employment, form: Form) -> HttpResponse | None:
        data = self._knowledge(form)
        if data is None:
            return None
        employments.detach_knowledge(self.actor, employment, **data)
        return self.done(employment, _("Knowledge detached."), "knowledge")

    def _entry(self, employment: Employment, form: Form) -> HttpResponse | None:
        post = self.request.POST
        payload: dict[str, Any] = filled(post, ("answer", "language"))
        questions = lines_of(post.get("questions"))
        if questions:
            payload["questions"] = questions
        data = validate(KnowledgeEntrySerializer, form, payload, organization=self.organization)
        if data is None:
            return None
        # One change to the person: the new entry exists only if it is attached.
        with transaction.atomic():
            entry = knowledge.create_entry(self.actor, self.organization, **data)
            employments.attach_knowledge(self.actor, employment, entries=[entry])
        return self.done(employment, _("Question and answer added and attached."), "knowledge")

    def _transition(self, employment: Employment, form: Form) -> HttpResponse | None:
        post = self.request.POST
        payload = {"to": post.get("to", ""), "reason": post.get("reason", "")}
        data = validate(TransitionSerializer, form, payload, organization=self.organization)
        if data is None:
            return None
        employments.transition_employment(self.actor, employment, data["to"], data["reason"])
        if data["to"] == EmploymentStatus.ACTIVE:
            messages.success(self.request, _("Onboarding is complete: the employee is active."))
            return redirect(self.url("console:employee", employment.pk))
        return self.done(employment, _("Status changed."))

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        employment: Employment = kwargs["employment"]
        checklist = employments.checklist_of(employment)
        entry_ids, document_ids = employments.attached_knowledge(employment)
        version = employment.avatar_version
        profile = version.voice_profile or {}
        voice = employment.voice or {}
        context.update(
            employment=employment,
            avatar=employment.avatar,
            position=employment.position,
            version=version,
            checklist=checklist,
            steps=[
                Step("persona", _("Review the persona"), checklist.persona_reviewed),
                Step("voice", _("Choose a voice"), checklist.voice_chosen),
                Step("knowledge", _("Attach knowledge"), checklist.knowledge_attached),
            ],
            editable=employment.status in ONBOARDING,
            status_label=EmploymentStatus(employment.status).label,
            allowed_next=employments.allowed_next(employment.status),
            may_read_knowledge=self.may(Permission.KNOWLEDGE_VIEW),
            may_write_knowledge=self.may(Permission.KNOWLEDGE_MANAGE),
            employee_url=self.url("console:employee", employment.pk),
            forms={
                "persona": Form(
                    values={
                        "persona": employment.persona,
                        "persona_reviewed": employment.persona_reviewed,
                    }
                ),
                "voice": Form(
                    values={
                        "voice_id": voice.get("voice_id", ""),
                        "pitch_hz": voice.get("pitch_hz", profile.get("pitch_hz", "")),
                        "syllables_per_second": voice.get(
                            "syllables_per_second", profile.get("syllables_per_second", "")
                        ),
                    }
                ),
                "knowledge": Form(),
                "detach": Form(),
                "entry": Form(values={"language": _default_language(employment)}),
                "transition": Form(values={"reason": _default_reason(employment.status)}),
            },
            **self._knowledge_context(entry_ids, document_ids),
        )
        return context

    def _knowledge_context(self, entry_ids: list[Any], document_ids: list[Any]) -> dict[str, Any]:
        if not self.may(Permission.KNOWLEDGE_VIEW):
            return {"attached_count": len(entry_ids) + len(document_ids)}
        entries = self.owned(KnowledgeEntry)
        documents = self.owned(KnowledgeDocument)
        return {
            "attached_count": len(entry_ids) + len(document_ids),
            "attached_entries": list(entries.filter(pk__in=entry_ids).order_by("-created_at")),
            "attached_documents": list(
                documents.filter(pk__in=document_ids).order_by("-created_at")
            ),
            "entry_choices": [
                (str(e.pk), str(e))
                for e in entries.exclude(pk__in=entry_ids)
                .only("id", "questions")
                .order_by("-created_at")[:KNOWLEDGE_CHOICES]
            ],
            "document_choices": [
                (str(d.pk), d.title)
                for d in documents.exclude(pk__in=document_ids)
                .only("id", "title")
                .order_by("-created_at")[:KNOWLEDGE_CHOICES]
            ],
        }


def _default_language(employment: Employment) -> str:
    spoken = employment.avatar.languages
    return str(spoken[0]) if spoken else ""


def _default_reason(status: str) -> str:
    if status == EmploymentStatus.OFFERED:
        return _("Offer accepted; onboarding starts.")
    return _("Onboarding checklist complete.")


urlpatterns = [
    path("market/", Browse.as_view(), name="market"),
    path("market/avatars/<uuid:pk>/", Preview.as_view(), name="market-avatar"),
    path("market/avatars/<uuid:pk>/portrait/", Portrait.as_view(), name="market-portrait"),
    path("market/avatars/<uuid:pk>/hire/", Hire.as_view(), name="hire-avatar"),
    path("market/positions/", Positions.as_view(), name="position-list"),
    path("market/positions/new/", NewPosition.as_view(), name="position-new"),
    path("market/hires/<uuid:pk>/", Onboarding.as_view(), name="hire-onboarding"),
]
