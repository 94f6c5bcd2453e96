"""Bad input in Chromium: a refused form shows its errors next to the fields, in the chosen
language, and changes nothing; a double click on submit creates one thing (with the page's
script, and without it, where only the server's submit token stands in the way); a session that
ends while a form is being filled sends the person to sign-in, and after signing in the form
shows what they typed.

Real: everything (the ASGI application over HTTP, sessions, CSRF, the stations form validated
by the stations API's serializer, the submit-once tokens in the cache, drafts kept in the
session). The expired session is made by deleting the session cookie in the browser, as its
expiry would."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from scheduling.models import Station
from tests.e2e.conftest import MARKS, says

pytestmark = MARKS


def _new_station(console, people):
    console.goto(f"/console/o/{people.alpha.slug}/stations/new/")
    return console.page.locator("[data-testid=station-form]")


def _stations(people, name: str) -> int:
    return Station.objects.for_organization(people.alpha).filter(name=name).count()


def test_errors_show_next_to_their_fields_in_the_chosen_language(console, people, language):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)
    form = _new_station(console, people)
    expect(page.locator("h1")).to_have_text(says(language, "New station"))
    form.locator("#field-name").fill("")
    form.locator("#field-max_on_air").fill("0")
    form.locator("#field-description").fill("Kept when the form comes back.")
    with page.expect_navigation():
        form.get_by_role("button", name=says(language, "Create station")).click()

    # Each error under its own field, in the page's language; what was typed is kept.
    name_errors = form.locator(".field:has(#field-name) .errors")
    expect(name_errors).to_have_text(says(language, "This field may not be blank."))
    expect(form.locator("#field-name")).to_have_attribute("aria-invalid", "true")
    limit_errors = form.locator(".field:has(#field-max_on_air) .errors")
    expect(limit_errors).to_have_text(
        says(language, "Ensure this value is greater than or equal to {min_value}.").format(
            min_value=1
        )
    )
    expect(form.locator("#field-description")).to_have_value("Kept when the form comes back.")
    assert not Station.objects.for_organization(people.alpha).exists()
    console.shot("errors")


@pytest.mark.parametrize("scripts", [True, False], ids=["with-script", "without-script"])
def test_a_double_click_on_submit_creates_one_station(console_in, people, scripts):
    console = console_in(java_script_enabled=scripts)
    page = console.page
    console.sign_in(people.email)
    form = _new_station(console, people)
    form.locator("#field-name").fill("Night desk")
    form.locator("#field-kind").select_option("kiosk")
    with page.expect_navigation():
        form.get_by_role("button", name="Create station").dblclick()
    page.wait_for_load_state()
    # However the two sends raced, the server acted once.
    console.goto(f"/console/o/{people.alpha.slug}/stations/")
    expect(page.locator("main")).to_contain_text("Night desk")
    assert _stations(people, "Night desk") == 1
    console.shot("one-station")


def test_an_expired_session_keeps_what_was_typed(console, people, language):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)
    form = _new_station(console, people)
    form.locator("#field-name").fill("Evening kiosk")
    form.locator("#field-kind").select_option("kiosk")
    form.locator("#field-description").fill("By the pharmacy, ground floor.")

    # The session ends while the form is open (its cookie is gone, as when it expires).
    page.context.clear_cookies(name="sessionid")
    with page.expect_navigation():
        form.get_by_role("button", name=says(language, "Create station")).click()
    expect(page).to_have_url(
        console.url(
            f"/console/sign-in/?next=%2Fconsole%2Fo%2F{people.alpha.slug}%2Fstations%2Fnew%2F"
        )
    )
    expect(page.locator("[role=status]")).to_have_text(says(language, "Sign in to continue."))
    assert _stations(people, "Evening kiosk") == 0
    console.shot("sign-in")

    # Signed in again: the same form, with what was typed, and a word about it.
    console.sign_in(people.email)
    expect(page).to_have_url(console.url(f"/console/o/{people.alpha.slug}/stations/new/"))
    expect(page.locator("main .notice[role=status]").first).to_have_text(
        says(
            language,
            "Your session had ended. What you typed was kept: check it and send it again.",
        )
    )
    form = page.locator("[data-testid=station-form]")
    expect(form.locator("#field-name")).to_have_value("Evening kiosk")
    expect(form.locator("#field-kind")).to_have_value("kiosk")
    expect(form.locator("#field-description")).to_have_value("By the pharmacy, ground floor.")
    console.shot("draft")
    with page.expect_navigation():
        form.get_by_role("button", name=says(language, "Create station")).click()
    assert _stations(people, "Evening kiosk") == 1
