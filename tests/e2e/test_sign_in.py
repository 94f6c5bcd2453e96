"""Signing in, in both languages, in Chromium: the language switcher, a wrong password refused
next to the form, the organization chooser, and the dashboard.

Real: everything (the ASGI application over HTTP, sessions, CSRF, the templates, the compiled
catalogues); nothing is simulated. Screenshots of each step go to the artifacts folder."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import MARKS, says

pytestmark = MARKS


def test_sign_in_and_reach_the_dashboard(console, people, language):
    page = console.page
    console.goto("/console/")
    # Signed out: the console sends the person to sign-in, with the way back.
    expect(page).to_have_url(f"{console.base_url}/console/sign-in/?next=%2Fconsole%2F")
    console.choose_language(language)
    expect(page.locator("form button[type=submit].primary")).to_have_text(says(language, "Sign in"))
    console.shot("sign-in")

    # A wrong password is refused, in the chosen language, and nobody is signed in.
    console.sign_in(people.email, password="not the password")
    expect(page.locator(".form-errors")).to_contain_text(
        says(language, "The email address or password is wrong.")
    )
    expect(page.locator("input[name=email]")).to_have_value(people.email)
    console.shot("wrong-password")

    console.sign_in(people.email)
    # Two organizations: the console asks which one (only the person's own are listed).
    expect(page.locator("h1")).to_have_text(says(language, "Your organizations"))
    cards = page.locator("main .card")
    expect(cards).to_have_count(2)
    expect(cards.filter(has_text=people.alpha.name)).to_have_count(1)
    expect(cards.filter(has_text=people.gamma.name)).to_have_count(1)
    assert people.beta.name not in console.text()
    console.shot("organizations")

    cards.filter(has_text=people.alpha.name).locator("a").click()
    expect(page).to_have_url(f"{console.base_url}/console/o/{people.alpha.slug}/")
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("nav.side a[data-section=dashboard]")).to_have_text(
        says(language, "Dashboard")
    )
    expect(page.locator("header.top button.link")).to_have_text(says(language, "Sign out"))
    console.shot("dashboard")

    # The next visit goes straight to the organization used last.
    console.goto("/console/")
    expect(page).to_have_url(f"{console.base_url}/console/o/{people.alpha.slug}/")


def test_the_language_can_be_changed_from_inside_the_console(console, people):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    dashboard = page.locator("nav.side a[data-section=dashboard]")
    expect(dashboard).to_have_text(says("en", "Dashboard"))
    console.choose_language("zh-hans")
    # Back on the same page, now in Chinese; and it stays so on the next page.
    expect(page).to_have_url(f"{console.base_url}/console/o/{people.alpha.slug}/")
    expect(dashboard).to_have_text(says("zh-hans", "Dashboard"))
    console.goto("/console/?choose")
    expect(page.locator("h1")).to_have_text(says("zh-hans", "Your organizations"))
    console.choose_language("en")
    expect(page.locator("h1")).to_have_text(says("en", "Your organizations"))
