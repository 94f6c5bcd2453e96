"""The employees pages: the list (status filter, name search), one employee's page (profile,
portrait, version, schedule, KPI charts, reviews, history) and its actions (suspend, resume,
terminate with a reason, move to a newer version, write a review).

Real Django stack and database: the services the API calls change the rows, sessions and the
submit-token cache are real. Shifts and rollup rows are written directly, as materialisation and
the rollup run would write them; nothing else is simulated."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from avatars.models import Employment, EmploymentTransition, PerformanceReview
from ironbowl.analytics import kpis
from scheduling.models import ShiftState
from tenants.roles import Role
from tests.analytics.rows import rollup
from tests.avatars import factories as avatars
from tests.console.conftest import submit_token, without_tokens
from tests.factories import PASSWORD
from tests.scheduling import duty_world

pytestmark = pytest.mark.django_db


def hire(organization, **fields) -> Employment:
    fields.setdefault("status", "active")
    return avatars.EmploymentFactory(organization=organization, **fields)


def url(name: str, organization, *args) -> str:
    return reverse(f"console:{name}", args=[organization.slug, *args])


def status_of(employment: Employment) -> str:
    return Employment.objects.for_organization(employment.organization).get(pk=employment.pk).status


def history_of(employment: Employment) -> int:
    transitions = EmploymentTransition.objects.for_organization(employment.organization)
    return transitions.filter(employment=employment).count()


# --- The list -------------------------------------------------------------------------------------


def test_the_list_shows_the_organizations_hires_and_no_others(console_a, org_a, org_b):
    mine = hire(org_a)
    theirs = hire(org_b)
    response = console_a.get(url("employees", org_a))
    html = response.content.decode()
    assert response.status_code == 200
    assert mine.avatar.name_en in html and mine.position.title in html
    assert str(mine.pk) in html
    assert theirs.avatar.name_en not in html and str(theirs.pk) not in html
    assert theirs.position.title not in html


def test_the_list_filters_by_status_and_searches_by_name(console_a, org_a):
    active = hire(org_a)
    suspended = hire(org_a, status="suspended")
    only_suspended = console_a.get(url("employees", org_a), {"status": "suspended"})
    html = only_suspended.content.decode()
    assert str(suspended.pk) in html and str(active.pk) not in html
    by_name = console_a.get(url("employees", org_a), {"q": active.avatar.name_zh})
    html = by_name.content.decode()
    assert str(active.pk) in html and str(suspended.pk) not in html
    nothing = console_a.get(url("employees", org_a), {"q": "no such name"})
    assert "No employee matches." in nothing.content.decode()


def test_an_unknown_status_is_named_next_to_the_filter(console_a, org_a):
    hire(org_a)
    html = console_a.get(url("employees", org_a), {"status": "fired"}).content.decode()
    assert 'id="field-status-errors"' in html
    assert "Choose a status from the list." in html


# --- One employee ---------------------------------------------------------------------------------


def test_the_employee_page_shows_profile_version_schedule_kpis_reviews_and_history(
    console_a, org_a
):
    employment = hire(org_a, persona="Warm and precise.")
    avatars.with_portrait(employment.avatar, employment.avatar_version)
    plan = duty_world.schedule(employment, duty_world.station(org_a, name="Health live room"))
    starts = timezone.now() + dt.timedelta(days=1)
    duty_world.shift(plan, starts, at_risk=True, risk_reason="No capacity of class cpu.")
    zone = zoneinfo.ZoneInfo(org_a.time_zone)
    today = timezone.now().astimezone(zone).date()
    rollup(org_a, kpis.local_midnight(today, zone), employment_id=employment.pk, visits=4321)
    review = avatars.PerformanceReviewFactory(
        employment=employment, period=dt.date(2025, 3, 1), rating=4, status="completed"
    )
    EmploymentTransition.objects.create(
        organization=org_a,
        employment=employment,
        from_status="onboarding",
        to_status="active",
        reason="Onboarding done",
        actor_label="owner@example.org",
    )

    response = console_a.get(url("employee", org_a, employment.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert employment.avatar.name_en in html and "Warm and precise." in html
    assert url("employee-portrait", org_a, employment.pk) in html
    assert "zh-CN" in html  # languages
    assert "Works with version 1 of its avatar." in html
    assert "Health live room" in html and "at risk" in html
    assert timezone.localtime(starts, zone).strftime("%Y-%m-%d %H:%M") in html  # org's zone
    assert html.count('<svg class="chart"') == 3 and "Visits · " in html and ": 4,321" in html
    assert url("employee-review", org_a, employment.pk, review.pk) in html
    assert "Onboarding done" in html
    for action in ("suspend", "terminate"):
        assert f'data-action="{action}"' in html
    assert 'data-action="resume"' not in html


def test_the_portrait_is_the_hired_versions(console_a, org_a):
    employment = hire(org_a)
    missing = console_a.get(url("employee-portrait", org_a, employment.pk))
    assert missing.status_code == 404
    avatars.with_portrait(employment.avatar, employment.avatar_version)
    found = console_a.get(url("employee-portrait", org_a, employment.pk))
    assert found.status_code == 200
    assert found["Content-Type"] == "image/png"
    assert found.content == avatars.PORTRAIT_PNG


# --- Tenancy --------------------------------------------------------------------------------------


def _pages(organization, employment: Employment, review: PerformanceReview) -> list[str]:
    pk = employment.pk
    return [
        url("employee", organization, pk),
        url("employee-portrait", organization, pk),
        url("employee-suspend", organization, pk),
        url("employee-resume", organization, pk),
        url("employee-terminate", organization, pk),
        url("employee-version", organization, pk),
        url("employee-review", organization, pk, review.pk),
    ]


def test_another_organizations_employee_answers_like_a_missing_one(console_b, org_a, org_b):
    employment = hire(org_a)
    avatars.with_portrait(employment.avatar, employment.avatar_version)
    review = avatars.PerformanceReviewFactory(employment=employment)
    missing_employment = Employment(pk=uuid.uuid4())
    missing_review = PerformanceReview(pk=uuid.uuid4())
    # Ids of org_a's rows typed by hand into org_b's URLs.
    for foreign, missing in zip(
        _pages(org_b, employment, review),
        _pages(org_b, missing_employment, missing_review),
        strict=True,
    ):
        answer, expected = console_b.get(foreign), console_b.get(missing)
        assert answer.status_code == expected.status_code == 404, foreign
        assert without_tokens(answer.content) == without_tokens(expected.content)
        assert employment.avatar.name_en.encode() not in answer.content
    # And org_a's own URLs are not org_b's member's to open.
    for page in _pages(org_a, employment, review):
        assert console_b.get(page).status_code == 404


def test_posting_to_another_organizations_employee_changes_nothing(console_b, org_a, org_b):
    employment = hire(org_a)
    review = avatars.PerformanceReviewFactory(employment=employment)
    for action in ("suspend", "terminate"):
        for organization in (org_b, org_a):
            response = console_b.post(
                url(f"employee-{action}", organization, employment.pk), {"reason": "Mine now"}
            )
            assert response.status_code == 404
    answer = console_b.post(
        url("employee-review", org_b, employment.pk, review.pk), {"rating": "1"}
    )
    assert answer.status_code == 404
    assert status_of(employment) == "active" and history_of(employment) == 0
    review.refresh_from_db()
    assert review.rating is None


def test_another_avatars_version_is_refused_like_a_missing_one(console_a, org_a, org_b):
    employment = hire(org_a)
    avatar = employment.avatar
    newer = avatars.AvatarVersionFactory(avatar=avatar, number=2)
    other = avatars.AvatarVersionFactory(avatar=avatars.ready_avatar(organization=org_b), number=5)
    for version_id in (other.pk, uuid.uuid4()):
        response = console_a.post(
            url("employee-version", org_a, employment.pk), {"version": version_id}
        )
        assert response.status_code == 400
        assert f"No such object: {version_id}." in response.content.decode()
    employment.refresh_from_db()
    assert employment.avatar_version_id == avatar.current_version_id != newer.pk


# --- Roles ----------------------------------------------------------------------------------------


def test_an_analyst_sees_the_employee_but_cannot_let_it_go(org_a, member_factory, console_for):
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    employment = hire(org_a)
    page = analyst.get(url("employee", org_a, employment.pk))
    assert page.status_code == 200
    assert 'data-testid="actions"' not in page.content.decode()
    assert analyst.get(url("employee-terminate", org_a, employment.pk)).status_code == 403
    refused = analyst.post(url("employee-terminate", org_a, employment.pk), {"reason": "Budget"})
    assert refused.status_code == 403
    assert "Analyst" in refused.content.decode()
    assert status_of(employment) == "active" and history_of(employment) == 0


def test_an_operator_cannot_read_reviews(org_a, member_factory, console_for):
    operator = console_for(member_factory(org_a, Role.OPERATOR))
    review = avatars.PerformanceReviewFactory(employment=hire(org_a))
    page = operator.get(url("employee", org_a, review.employment_id)).content.decode()
    assert 'data-testid="reviews"' not in page
    assert (
        operator.get(url("employee-review", org_a, review.employment_id, review.pk)).status_code
        == 403
    )


# --- Lifecycle actions ----------------------------------------------------------------------------


def test_terminate_with_a_reason_lets_the_employee_go(console_a, org_a):
    employment = hire(org_a)
    page = console_a.get(url("employee-terminate", org_a, employment.pk))
    assert page.status_code == 200
    token = submit_token(page.content.decode())
    response = console_a.post(
        url("employee-terminate", org_a, employment.pk),
        {"reason": "The pilot has ended", "submit_token": token},
    )
    assert response.status_code == 302
    assert response["Location"] == url("employee", org_a, employment.pk)
    assert status_of(employment) == "terminated"
    step = EmploymentTransition.objects.for_organization(org_a).get(employment=employment)
    assert step.reason == "The pilot has ended" and step.to_status == "terminated"
    html = console_a.get(response["Location"]).content.decode()
    assert "The employee is terminated." in html and "The pilot has ended" in html
    assert 'data-testid="actions"' not in html  # nothing follows terminated


def test_terminate_without_a_reason_is_refused_next_to_the_field(console_a, org_a):
    employment = hire(org_a)
    for reason in ("", "   "):
        response = console_a.post(
            url("employee-terminate", org_a, employment.pk), {"reason": reason}
        )
        html = response.content.decode()
        assert response.status_code == 400
        assert 'id="field-reason-errors"' in html
        assert "Give a reason for this change" in html
    too_long = console_a.post(
        url("employee-terminate", org_a, employment.pk), {"reason": "x" * 301}
    )
    assert too_long.status_code == 400
    assert 'id="field-reason-errors"' in too_long.content.decode()
    assert "x" * 301 in too_long.content.decode()  # what was typed is kept
    assert status_of(employment) == "active" and history_of(employment) == 0


def test_a_refused_transition_shows_the_services_message(console_a, org_a):
    offered = hire(org_a, status="offered")
    page = console_a.get(url("employee-suspend", org_a, offered.pk)).content.decode()
    assert "An employment that is offered cannot be suspended" in page
    response = console_a.post(url("employee-suspend", org_a, offered.pk), {"reason": "Try"})
    assert response.status_code == 409  # the service's conflict, as the API answers it
    assert "An employment that is offered cannot be suspended" in response.content.decode()
    assert status_of(offered) == "offered" and history_of(offered) == 0


def test_suspend_then_resume(console_a, org_a):
    employment = avatars.onboarded_employment(organization=org_a, status="active")
    suspended = console_a.post(
        url("employee-suspend", org_a, employment.pk), {"reason": "Complaint under review"}
    )
    assert suspended.status_code == 302 and status_of(employment) == "suspended"
    page = console_a.get(url("employee", org_a, employment.pk)).content.decode()
    assert 'data-action="resume"' in page and 'data-action="suspend"' not in page
    resumed = console_a.post(
        url("employee-resume", org_a, employment.pk), {"reason": "Complaint dismissed"}
    )
    assert resumed.status_code == 302 and status_of(employment) == "active"
    assert history_of(employment) == 2


def test_resuming_before_onboarding_is_done_shows_what_is_missing(console_a, org_a):
    employment = hire(org_a, status="suspended")
    response = console_a.post(url("employee-resume", org_a, employment.pk), {"reason": "Back"})
    assert response.status_code == 409
    assert "Onboarding is not finished" in response.content.decode()
    assert status_of(employment) == "suspended" and history_of(employment) == 0


def test_a_double_submit_acts_once(console_a, org_a):
    employment = hire(org_a)
    token = submit_token(
        console_a.get(url("employee-suspend", org_a, employment.pk)).content.decode()
    )
    sent = {"reason": "Maintenance", "submit_token": token}
    first = console_a.post(url("employee-suspend", org_a, employment.pk), sent)
    second = console_a.post(url("employee-suspend", org_a, employment.pk), sent)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert status_of(employment) == "suspended" and history_of(employment) == 1


def test_the_terminate_form_comes_back_filled_after_an_expired_session(org_a, owner_a):
    """The session ended while the form was open: the POST is kept, not acted on; after signing
    in again the confirmation page shows the reason typed."""
    employment = hire(org_a)
    client = Client()
    page = url("employee-terminate", org_a, employment.pk)
    response = client.post(page, {"reason": "Contract not renewed", "submit_token": "t"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:sign-in"))
    assert status_of(employment) == "active"
    signed_in = client.post(
        response["Location"], {"email": owner_a.user.email, "password": PASSWORD}
    )
    assert signed_in["Location"] == page
    html = client.get(page).content.decode()
    assert ">Contract not renewed</textarea>" in html
    assert "Your session had ended." in html
    assert status_of(employment) == "active"
    # Shown once: the next visit starts empty.
    assert "Contract not renewed" not in client.get(page).content.decode()


# --- Version and reviews --------------------------------------------------------------------------


def test_move_to_a_newer_version(console_a, org_a):
    employment = hire(org_a)
    avatar = employment.avatar
    newer = avatars.AvatarVersionFactory(avatar=avatar, number=2)
    avatar.current_version = newer
    avatar.save(update_fields=["current_version"])
    detail = console_a.get(url("employee", org_a, employment.pk)).content.decode()
    assert "Version 2 is available." in detail
    page = console_a.get(url("employee-version", org_a, employment.pk)).content.decode()
    assert str(newer.pk) in page
    response = console_a.post(
        url("employee-version", org_a, employment.pk),
        {"version": str(newer.pk), "submit_token": submit_token(page)},
    )
    assert response.status_code == 302
    employment.refresh_from_db()
    assert employment.avatar_version_id == newer.pk
    again = console_a.post(
        url("employee-version", org_a, employment.pk), {"version": str(newer.pk)}
    )
    assert again.status_code == 409
    assert "already works with version 2" in again.content.decode()


def test_an_analyst_writes_a_review(org_a, member_factory, console_for):
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    review = avatars.PerformanceReviewFactory(
        employment=hire(org_a), kpis={"visits": 1200, "answered_share": 0.875}
    )
    page_url = url("employee-review", org_a, review.employment_id, review.pk)
    page = analyst.get(page_url).content.decode()
    assert "1200" in page and "87.5%" in page
    refused = analyst.post(page_url, {"rating": "", "comments": "Good month"})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'id="field-rating-errors"' in html and "Give a rating from 1 to 5" in html
    assert "Good month" in html
    review.refresh_from_db()
    assert review.status == "open"
    bad = analyst.post(page_url, {"rating": "9", "comments": ""})
    assert bad.status_code == 400 and 'id="field-rating-errors"' in bad.content.decode()
    done = analyst.post(page_url, {"rating": "4", "comments": "Good month"})
    assert done.status_code == 302
    review.refresh_from_db()
    assert (review.status, review.rating, review.comments) == ("completed", 4, "Good month")


def test_shift_states_are_named_in_the_schedule(console_a, org_a):
    employment = hire(org_a)
    plan = duty_world.schedule(employment, duty_world.station(org_a))
    duty_world.shift(plan, timezone.now() + dt.timedelta(hours=2), state=ShiftState.PLANNED)
    html = console_a.get(url("employee", org_a, employment.pk)).content.decode()
    assert "Planned" in html
