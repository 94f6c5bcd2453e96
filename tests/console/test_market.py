"""The console's talent market and hiring flow: browsing and filtering, the preview and its
portrait, opening a position, hiring, and the onboarding checklist up to activation.

Real Django stack (sessions, middleware, templates, the cache, the avatars services and the API's
serializers); the portrait is a real PNG file under MEDIA_ROOT, written where a build puts it.
Nothing is simulated.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from avatars.employments import attached_knowledge
from avatars.models import Employment, KnowledgeEntry, Position
from ironbowl.console.pages.market import PAGE_SIZE
from tenants.roles import Role
from tests import factories
from tests.avatars import factories as af
from tests.console.conftest import submit_token
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


# --- helpers ------------------------------------------------------------------------------------


def url(name: str, org, *args) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


def html_of(response) -> str:
    return response.content.decode()


def field_errors(html: str, name: str) -> str:
    """The error list rendered next to a field (empty when it has none)."""
    match = re.search(rf'<ul class="errors" id="field-{name}-errors"[^>]*>(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def card_ids(response) -> set[str]:
    return set(re.findall(r'data-avatar="([0-9a-f-]+)"', html_of(response)))


def vendor(slug: str):
    return factories.OrganizationFactory(slug=slug, name=f"Vendor {slug}", kind="vendor")


def published(organization=None, **fields):
    return af.ready_avatar(
        organization=organization or vendor(f"v-{uuid.uuid4().hex[:8]}"),
        visibility="public",
        **fields,
    )


def hire_form(client: Client, org, avatar) -> str:
    page = client.get(url("hire-avatar", org, avatar.pk))
    assert page.status_code == 200, page.content
    return submit_token(html_of(page))


def hire(client: Client, org, avatar, position, token: str | None = None, **fields):
    body = {
        "submit_token": token or hire_form(client, org, avatar),
        "position": str(position.pk) if hasattr(position, "pk") else position,
        "seats": "1",
        "starts_on": "2031-03-01",
        **fields,
    }
    return client.post(url("hire-avatar", org, avatar.pk), body)


def employments_of(org):
    return Employment.objects.for_organization(org)


# --- browsing and filters -----------------------------------------------------------------------


def test_the_market_lists_published_avatars_only(org_a, org_b, console_a):
    shown = published(name_zh="门诊导医", name_en="Clinic guide")
    private_of_b = af.ready_avatar(organization=org_b, name_en="Beta private")
    draft = af.AvatarFactory(visibility="public", name_en="Public draft")

    response = console_a.get(url("market", org_a))

    assert response.status_code == 200
    assert card_ids(response) == {str(shown.pk)}
    html = html_of(response)
    assert "门诊导医" in html and shown.organization.name in html
    assert "Beta private" not in html and "Public draft" not in html
    assert str(private_of_b.pk) not in html and str(draft.pk) not in html


def test_filters_by_skill_language_and_words(org_a, console_a):
    teacher = published(name_en="Science teacher", skills=["teacher"], languages=["zh-CN"])
    cantonese = published(
        name_en="Hong Kong desk", skills=["service_desk"], languages=["yue-HK", "en-US"]
    )
    anchor = published(
        name_en="Health anchor",
        skills=["live_anchor", "presenter"],
        languages=["zh-CN"],
        description="Hosts the hospital's health live room.",
    )
    market = url("market", org_a)

    assert card_ids(console_a.get(market, {"skill": "teacher"})) == {str(teacher.pk)}
    assert card_ids(console_a.get(market, {"skill": ["teacher", "presenter"]})) == {
        str(teacher.pk),
        str(anchor.pk),
    }
    assert card_ids(console_a.get(market, {"language": "yue"})) == {str(cantonese.pk)}
    assert card_ids(console_a.get(market, {"language": "zh"})) == {
        str(teacher.pk),
        str(anchor.pk),
    }
    assert card_ids(console_a.get(market, {"q": "HOSPITAL live"})) == {str(anchor.pk)}
    combined = console_a.get(market, {"q": "desk", "language": "en", "skill": "service_desk"})
    assert card_ids(combined) == {str(cantonese.pk)}
    nothing = console_a.get(market, {"q": "astronaut"})
    assert card_ids(nothing) == set()
    assert "No avatar on the market matches these filters." in html_of(nothing)


def test_the_market_sorts_by_price(org_a, console_a):
    cheap = published(list_price=Decimal("100"))
    dear = published(list_price=Decimal("900"))

    html = html_of(console_a.get(url("market", org_a), {"sort": "-price"}))

    assert html.index(str(dear.pk)) < html.index(str(cheap.pk))
    html = html_of(console_a.get(url("market", org_a), {"sort": "price"}))
    assert html.index(str(cheap.pk)) < html.index(str(dear.pk))


def test_a_bad_filter_is_explained_next_to_its_field(org_a, console_a):
    published(languages=["zh-CN"])

    response = console_a.get(url("market", org_a), {"language": "zh_CN", "skill": "juggler"})

    html = html_of(response)
    assert response.status_code == 200
    assert "Use hyphens, not underscores, in language tags: zh-CN" in field_errors(html, "language")
    assert "Unknown skill: “juggler”" in html
    assert card_ids(response) == set()
    assert "Fix the filters marked above to see avatars." in html


def test_the_market_pages_through_avatars_and_keeps_the_filters(org_a, console_a):
    seller = vendor("many")
    for _ in range(PAGE_SIZE + 3):
        published(seller, skills=["presenter"])
    published(seller, skills=["teacher"])

    first = console_a.get(url("market", org_a), {"skill": "presenter"})
    next_link = re.search(r'rel="next" href="([^"]+)"', html_of(first)).group(1)
    second = console_a.get(url("market", org_a) + next_link.replace("&amp;", "&"))

    assert len(card_ids(first)) == PAGE_SIZE
    assert len(card_ids(second)) == 3
    assert card_ids(first).isdisjoint(card_ids(second))
    assert "skill=presenter" in next_link and "page=2" in next_link


# --- preview and portrait -----------------------------------------------------------------------


def test_the_preview_shows_portrait_languages_skills_and_offers_to_render_a_sample(
    org_a, console_a
):
    avatar = af.with_portrait(
        published(name_zh="政策讲解员", languages=["zh-CN", "yue-HK"], skills=["presenter"])
    )

    response = console_a.get(url("market-avatar", org_a, avatar.pk))

    html = html_of(response)
    assert response.status_code == 200
    portrait = url("market-portrait", org_a, avatar.pk)
    assert f'src="{portrait}"' in html
    assert "zh-CN" in html and "yue-HK" in html and "Presenter" in html
    assert "No rendered sample yet." in html  # rendering one: tests/console/test_samples.py
    assert f'action="{url("sample-render", org_a, avatar.pk)}"' in html
    image = console_a.get(portrait)
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert image.content == af.PORTRAIT_PNG


def test_an_avatar_without_a_portrait_says_so_and_its_portrait_is_not_found(org_a, console_a):
    avatar = published()

    html = html_of(console_a.get(url("market-avatar", org_a, avatar.pk)))

    assert "No portrait yet" in html
    assert console_a.get(url("market-portrait", org_a, avatar.pk)).status_code == 404


def test_hire_statistics_are_the_vendors_and_every_member_sees_its_own_hires(
    org_a, org_b, console_a, console_b
):
    """org_a publishes an avatar; org_b and a third institution hire it. The vendor sees counts
    (never who); org_b sees its own hire, not the vendor's counts (as in the API)."""
    avatar = published(org_a)
    gamma = factories.OrganizationFactory(slug="gamma-hospital", name="Gamma Hospital")
    af.EmploymentFactory(organization=org_b, avatar=avatar, status="active", seats=2)
    af.EmploymentFactory(organization=gamma, avatar=avatar, status="onboarding", seats=3)

    vendor_view = html_of(console_a.get(url("market-avatar", org_a, avatar.pk)))
    hirer_view = html_of(console_b.get(url("market-avatar", org_b, avatar.pk)))

    counts = re.search(r'data-testid="hire-statistics">(.*?)</div>\s*</div>', vendor_view, re.S)
    values = re.findall(r'class="value">(\d+)<', vendor_view)
    assert counts and values[:3] == ["2", "5", "2"]
    for name in (org_b.name, gamma.name, org_b.slug, gamma.slug):
        assert name not in vendor_view
    assert 'data-testid="hire-statistics"' not in hirer_view
    assert gamma.name not in hirer_view
    assert "Active" in hirer_view  # its own hire, with its status
    assert "None yet." in vendor_view


# --- tenancy and roles --------------------------------------------------------------------------


def test_another_organizations_private_avatar_answers_like_a_missing_one(
    org_a, org_b, console_a, console_b
):
    private = af.with_portrait(af.ready_avatar(organization=org_a, name_en="Alpha own"))

    assert console_a.get(url("market-avatar", org_a, private.pk)).status_code == 200
    for name in ("market-avatar", "market-portrait", "hire-avatar"):
        foreign = console_b.get(url(name, org_b, private.pk))
        missing = console_b.get(url(name, org_b, uuid.uuid4()))
        assert foreign.status_code == missing.status_code == 404, name
        assert "Alpha own" not in html_of(foreign)
    # Editing the organization in the URL: not a member, not found.
    assert console_b.get(url("market-avatar", org_a, private.pk)).status_code == 404


def test_positions_and_hires_of_another_organization_are_not_found(
    org_a, org_b, console_a, console_b
):
    position_a = af.PositionFactory(organization=org_a, title="Alpha night desk")
    employment_a = af.EmploymentFactory(organization=org_a, position=position_a)
    af.PositionFactory(organization=org_b, title="Beta licensing desk")
    avatar = published()

    positions_b = html_of(console_b.get(url("position-list", org_b)))
    hire_page_b = html_of(console_b.get(url("hire-avatar", org_b, avatar.pk)))
    hire_page_a = html_of(console_a.get(url("hire-avatar", org_a, avatar.pk)))

    assert "Beta licensing desk" in positions_b and "Alpha night desk" not in positions_b
    assert "Alpha night desk" not in hire_page_b
    assert "Beta licensing desk" not in hire_page_a and "Alpha night desk" in hire_page_a
    foreign = console_b.get(url("hire-onboarding", org_b, employment_a.pk))
    missing = console_b.get(url("hire-onboarding", org_b, uuid.uuid4()))
    assert foreign.status_code == missing.status_code == 404
    assert console_b.get(url("hire-onboarding", org_a, employment_a.pk)).status_code == 404


def test_a_foreign_position_in_the_hire_post_answers_like_a_missing_one(org_a, org_b, console_a):
    avatar = published()
    foreign = af.PositionFactory(organization=org_b)
    missing = uuid.uuid4()

    answers = [hire(console_a, org_a, avatar, pk) for pk in (str(foreign.pk), str(missing))]

    for response, pk in zip(answers, (foreign.pk, missing), strict=True):
        assert response.status_code == 400
        assert f"No such object: {pk}." in field_errors(html_of(response), "position")
    first, second = (field_errors(html_of(r), "position") for r in answers)
    assert first.replace(str(foreign.pk), "?") == second.replace(str(missing), "?")
    assert not employments_of(org_a).exists()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.BILLING, Role.OPERATOR])
def test_a_role_that_may_browse_but_not_hire_gets_403(org_a, member_factory, console_for, role):
    client = console_for(member_factory(org_a, role))
    avatar = published()
    position = af.PositionFactory(organization=org_a)

    assert client.get(url("market", org_a)).status_code == 200
    preview = client.get(url("market-avatar", org_a, avatar.pk))
    assert preview.status_code == 200
    assert 'data-testid="hire"' not in html_of(preview)
    assert client.get(url("hire-avatar", org_a, avatar.pk)).status_code == 403
    refused = hire(client, org_a, avatar, position, token="t-1")
    assert refused.status_code == 403
    assert client.get(url("position-new", org_a)).status_code == 403
    assert client.post(url("position-new", org_a), {"title": "Desk"}).status_code == 403
    assert not employments_of(org_a).exists()
    assert Position.objects.for_organization(org_a).count() == 1


def test_an_analyst_may_read_a_hires_checklist_but_not_change_it(
    org_a, member_factory, console_for
):
    client = console_for(member_factory(org_a, Role.ANALYST))
    employment = af.EmploymentFactory(organization=org_a, persona="Calm.")

    page = client.get(url("hire-onboarding", org_a, employment.pk))
    refused = client.post(
        url("hire-onboarding", org_a, employment.pk),
        {"step": "persona", "persona": "Loud.", "persona_reviewed": "true"},
    )

    assert page.status_code == 200 and 'name="step"' not in html_of(page)
    assert refused.status_code == 403
    employment.refresh_from_db()
    assert (employment.persona, employment.persona_reviewed) == ("Calm.", False)


# --- positions ----------------------------------------------------------------------------------


def test_opening_a_position_with_bad_input_shows_errors_next_to_fields_and_creates_nothing(
    org_a, console_a
):
    token = submit_token(html_of(console_a.get(url("position-new", org_a))))

    response = console_a.post(
        url("position-new", org_a),
        {
            "submit_token": token,
            "title": "",
            "required_languages": "zh_CN",
            "required_skills": ["juggler"],
            "headcount": "0",
        },
    )

    html = html_of(response)
    assert response.status_code == 400
    assert "This field is required." in field_errors(html, "title")
    assert "Use hyphens, not underscores" in field_errors(html, "required_languages")
    assert "greater than or equal to 1" in field_errors(html, "headcount")
    assert "juggler" in html  # the refused skill is named
    assert 'value="zh_CN"' in html  # what was typed is kept
    assert not Position.objects.for_organization(org_a).exists()


def test_opening_a_position_lists_it_and_offers_its_candidates(org_a, console_a):
    token = submit_token(html_of(console_a.get(url("position-new", org_a))))

    response = console_a.post(
        url("position-new", org_a),
        {
            "submit_token": token,
            "title": "Cantonese service desk",
            "department": "Outpatients",
            "required_languages": "yue, en-us",
            "required_skills": ["service_desk"],
            "headcount": "2",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == url("position-list", org_a)
    position = Position.objects.for_organization(org_a).get()
    assert position.required_languages == ["yue", "en-US"]
    assert (position.required_skills, position.headcount) == (["service_desk"], 2)
    listing = html_of(console_a.get(url("position-list", org_a)))
    assert "Cantonese service desk" in listing
    assert "skill=service_desk&amp;language=yue%2C+en-US" in listing


def test_a_position_opened_for_an_avatar_returns_to_its_hire_form(org_a, console_a):
    avatar = published()
    page = console_a.get(url("position-new", org_a) + f"?for={avatar.pk}")

    response = console_a.post(
        url("position-new", org_a),
        {
            "submit_token": submit_token(html_of(page)),
            "for_avatar": str(avatar.pk),
            "title": "Lobby guide",
        },
    )

    position = Position.objects.for_organization(org_a).get()
    assert response["Location"] == url("hire-avatar", org_a, avatar.pk) + f"?position={position.pk}"
    form = html_of(console_a.get(response["Location"]))
    assert f'<option value="{position.pk}" selected>' in form


# --- hiring -------------------------------------------------------------------------------------


def test_hiring_makes_an_offer_and_opens_its_checklist(org_a, console_a):
    avatar = published(list_price=Decimal("2999"))
    position = af.PositionFactory(organization=org_a)

    response = hire(console_a, org_a, avatar, position, seats="2", ends_on="2031-12-31")

    employment = employments_of(org_a).get()
    assert response.status_code == 302
    assert response["Location"] == url("hire-onboarding", org_a, employment.pk)
    assert (employment.status, employment.seats, employment.rate) == (
        "offered",
        2,
        Decimal("2999.00"),
    )
    assert str(employment.starts_on) == "2031-03-01" and str(employment.ends_on) == "2031-12-31"
    checklist = html_of(console_a.get(response["Location"]))
    assert "is offered the position" in checklist
    assert "Accept the offer" in checklist


def test_a_double_submitted_hire_creates_one_employment(org_a, console_a):
    avatar = published()
    position = af.PositionFactory(organization=org_a, headcount=5)
    token = hire_form(console_a, org_a, avatar)

    first = hire(console_a, org_a, avatar, position, token=token)
    second = hire(console_a, org_a, avatar, position, token=token)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert employments_of(org_a).count() == 1


def test_a_hire_beyond_the_plans_seats_shows_the_services_refusal(org_a, console_a):
    # The trial plan allows 5 seats; other hires hold 4 of them.
    af.EmploymentFactory(organization=org_a, seats=4, status="active")
    avatar = published()
    position = af.PositionFactory(organization=org_a)

    response = hire(console_a, org_a, avatar, position, seats="2")

    assert response.status_code == 409
    assert (
        "Your plan allows 5 seats and other hires hold 4, so this hire can have at most 1, not 2."
        in field_errors(html_of(response), "seats")
    )
    assert 'value="2"' in html_of(response)
    assert employments_of(org_a).count() == 1


def test_bad_hire_input_is_refused_next_to_each_field(org_a, console_a):
    avatar = published()
    position = af.PositionFactory(organization=org_a)

    response = hire(console_a, org_a, avatar, position, seats="0", starts_on="", rate="-5")

    html = html_of(response)
    assert response.status_code == 400
    assert "greater than or equal to 1" in field_errors(html, "seats")
    assert "This field is required." in field_errors(html, "starts_on")
    assert "greater than or equal to 0" in field_errors(html, "rate")
    assert not employments_of(org_a).exists()


def test_a_hire_that_lacks_the_positions_requirements_is_explained(org_a, console_a):
    avatar = published(languages=["zh-CN"], skills=["service_desk"])
    position = af.PositionFactory(
        organization=org_a, title="Cantonese desk", required_languages=["yue"]
    )

    form = html_of(console_a.get(url("hire-avatar", org_a, avatar.pk)))
    response = hire(console_a, org_a, avatar, position)

    assert "Cantonese desk" in form and "lacks yue" in form
    assert response.status_code == 400
    assert "does not meet the requirements of Cantonese desk" in html_of(response)
    assert not employments_of(org_a).exists()


def test_an_organization_may_hire_its_own_ready_avatar(org_a, console_a):
    own = af.ready_avatar(organization=org_a)
    position = af.PositionFactory(organization=org_a)

    assert hire(console_a, org_a, own, position).status_code == 302
    assert employments_of(org_a).get().avatar_id == own.pk


# --- onboarding ---------------------------------------------------------------------------------


def step(client: Client, org, employment, name: str, **fields):
    page = client.get(url("hire-onboarding", org, employment.pk))
    html = html_of(page)
    # The token of this step's form.
    form = re.search(
        rf'name="submit_token" value="([^"]+)">\s*<input type="hidden" name="step" value="{name}"',
        html,
    )
    assert form, f"no {name} form on the page"
    return client.post(
        url("hire-onboarding", org, employment.pk),
        {"submit_token": form.group(1), "step": name, **fields},
    )


def test_onboarding_from_offer_to_active(org_a, console_a):
    avatar = published(languages=["zh-CN"])
    employment = af.EmploymentFactory(organization=org_a, avatar=avatar, persona="Warm.")
    onboarding = url("hire-onboarding", org_a, employment.pk)

    accepted = step(console_a, org_a, employment, "transition", to="onboarding", reason="Go.")
    persona = step(
        console_a,
        org_a,
        employment,
        "persona",
        persona="Warm and precise.",
        persona_reviewed="true",
    )
    voice = step(console_a, org_a, employment, "voice", pitch_hz="180", syllables_per_second="4.2")
    entry = step(
        console_a,
        org_a,
        employment,
        "entry",
        questions="门诊几点开门？\n门诊开放时间",
        answer="工作日 8:00 开门。",
        language="zh-cn",
    )

    for response, anchor in ((persona, "persona"), (voice, "voice"), (entry, "knowledge")):
        assert response.status_code == 302
        assert response["Location"] == f"{onboarding}#{anchor}"
    assert accepted["Location"] == onboarding
    employment.refresh_from_db()
    assert employment.status == "onboarding"
    assert (employment.persona, employment.persona_reviewed) == ("Warm and precise.", True)
    assert employment.voice == {"pitch_hz": 180.0, "syllables_per_second": 4.2}
    added = KnowledgeEntry.objects.for_organization(org_a).get()
    assert added.questions == ["门诊几点开门？", "门诊开放时间"] and added.language == "zh-CN"
    assert attached_knowledge(employment) == ([added.pk], [])
    page = html_of(console_a.get(onboarding))
    assert page.count('<span class="badge ok">done</span>') == 3

    activated = step(console_a, org_a, employment, "transition", to="active", reason="Ready.")

    assert activated.status_code == 302
    assert activated["Location"] == url("employee", org_a, employment.pk)
    employment.refresh_from_db()
    assert employment.status == "active"
    assert "its onboarding is over" in html_of(console_a.get(onboarding))


def test_activating_before_the_checklist_is_done_is_refused(org_a, console_a):
    employment = af.EmploymentFactory(organization=org_a, status="onboarding")

    response = console_a.post(
        url("hire-onboarding", org_a, employment.pk),
        {"submit_token": "t-activate", "step": "transition", "to": "active", "reason": "Now."},
    )

    assert response.status_code == 409
    assert "Onboarding is not finished: review the persona; choose a voice" in html_of(response)
    employment.refresh_from_db()
    assert employment.status == "onboarding"


def test_a_status_change_needs_a_reason_next_to_its_field(org_a, console_a):
    employment = af.EmploymentFactory(organization=org_a)

    response = step(console_a, org_a, employment, "transition", to="onboarding", reason="  ")

    assert response.status_code == 400
    assert "Give a reason for this change" in field_errors(html_of(response), "reason")
    employment.refresh_from_db()
    assert employment.status == "offered"


def test_a_voice_must_be_chosen_and_in_range(org_a, console_a):
    employment = af.EmploymentFactory(organization=org_a)

    empty = step(console_a, org_a, employment, "voice", voice_id="", pitch_hz="")
    too_high = step(console_a, org_a, employment, "voice", pitch_hz="9000")

    assert empty.status_code == too_high.status_code == 400
    assert "Choose a voice" in html_of(empty)
    assert "less than or equal to 500" in field_errors(html_of(too_high), "pitch_hz")
    employment.refresh_from_db()
    assert employment.voice == {}


def test_knowledge_of_another_organization_cannot_be_attached(org_a, org_b, console_a):
    employment = af.EmploymentFactory(organization=org_a)
    own = af.KnowledgeEntryFactory(organization=org_a, questions=["Alpha hours?"])
    foreign = af.KnowledgeEntryFactory(organization=org_b, questions=["Beta secret?"])

    page = html_of(console_a.get(url("hire-onboarding", org_a, employment.pk)))
    refused = step(console_a, org_a, employment, "knowledge", entries=[str(foreign.pk)])
    attached = step(console_a, org_a, employment, "knowledge", entries=[str(own.pk)])

    assert "Alpha hours?" in page and "Beta secret?" not in page
    assert refused.status_code == 400
    assert f"No such object: {foreign.pk}." in field_errors(html_of(refused), "entries")
    assert attached.status_code == 302
    assert attached_knowledge(employment) == ([own.pk], [])

    detached = step(console_a, org_a, employment, "detach", entries=[str(own.pk)])

    assert detached.status_code == 302
    assert attached_knowledge(employment) == ([], [])


def test_a_double_submitted_question_is_added_once(org_a, console_a):
    employment = af.EmploymentFactory(organization=org_a)
    html = html_of(console_a.get(url("hire-onboarding", org_a, employment.pk)))
    token = re.search(
        r'name="submit_token" value="([^"]+)">\s*<input type="hidden" name="step" value="entry"',
        html,
    ).group(1)
    body = {
        "submit_token": token,
        "step": "entry",
        "questions": "Where is the pharmacy?",
        "answer": "Ground floor.",
        "language": "en-US",
    }

    first = console_a.post(url("hire-onboarding", org_a, employment.pk), body)
    second = console_a.post(url("hire-onboarding", org_a, employment.pk), body)

    assert first.status_code == second.status_code == 302
    assert KnowledgeEntry.objects.for_organization(org_a).count() == 1


def test_the_markets_query_count_does_not_grow_with_avatars(org_a, console_a):
    seller = vendor("counted")
    for _ in range(3):
        af.with_portrait(published(seller))
    console_a.get(url("market", org_a))  # the first page of the org writes the session once
    with CaptureQueriesContext(connection) as few:
        console_a.get(url("market", org_a))
    for _ in range(9):
        af.with_portrait(published(seller))
    with CaptureQueriesContext(connection) as more:
        response = console_a.get(url("market", org_a))

    assert len(card_ids(response)) == 12
    assert len(more.captured_queries) == len(few.captured_queries)


def test_a_hire_sent_after_the_session_expired_is_kept_for_after_sign_in(org_a, owner_a):
    avatar = published()
    position = af.PositionFactory(organization=org_a)
    client = Client()
    hire_url = url("hire-avatar", org_a, avatar.pk)

    response = client.post(
        hire_url, {"position": str(position.pk), "seats": "3", "starts_on": "2031-05-04"}
    )
    assert response.status_code == 302
    client.post(response["Location"], {"email": owner_a.user.email, "password": PASSWORD})
    page = html_of(client.get(hire_url))

    assert not employments_of(org_a).exists()
    assert 'value="3"' in page and 'value="2031-05-04"' in page
    assert f'<option value="{position.pk}" selected>' in page
