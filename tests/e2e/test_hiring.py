"""Hiring from the talent market, in both languages, in Chromium: filter the market, preview an
avatar, open a position for it, offer it the position, and take the hire through its onboarding
checklist (accept, persona, voice, knowledge) until it is active and listed among the employees.

Real: everything (the ASGI application over HTTP, the market's selectors, the positions and
employments services the API calls, the API's serializers validating each form, the audit log,
the templates and catalogues). The avatars on the market are made by the factories (a vendor's
built versions under consent): building one is another journey."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from avatars.models import Employment
from tests.avatars.factories import ready_avatar
from tests.e2e.conftest import MARKS, named, says
from tests.factories import OrganizationFactory

pytestmark = MARKS


@pytest.fixture
def market(people):
    """A vendor's two public avatars: one speaks Chinese and English, the other Chinese only."""
    vendor = OrganizationFactory(slug="bright-vendor", name="Bright Avatars", kind="vendor")
    bilingual = ready_avatar(
        organization=vendor,
        visibility="public",
        name_zh="小艺",
        name_en="Xiaoyi",
        languages=["zh-CN", "en-US"],
        skills=["live_anchor"],
    )
    chinese = ready_avatar(
        organization=vendor,
        visibility="public",
        name_zh="小明",
        name_en="Xiaoming",
        languages=["zh-CN"],
        skills=["service_desk"],
    )
    return bilingual, chinese


def _send(page, form, button_text: str) -> None:
    with page.expect_navigation():
        form.get_by_role("button", name=button_text).click()


def test_hire_from_the_talent_market(console, people, market, language):
    bilingual, chinese = market
    name = named(language, bilingual)
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)

    # The market, filtered to avatars speaking English.
    page.locator("nav.side a[data-section=market]").click()
    expect(page.locator("h1")).to_have_text(says(language, "Talent market"))
    expect(page.locator("li.card[data-avatar]")).to_have_count(2)
    page.fill("#field-language", "en")
    with page.expect_navigation():
        page.get_by_role("button", name=says(language, "Filter")).click()
    cards = page.locator("li.card[data-avatar]")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-avatar", str(bilingual.pk))
    console.shot("market-filtered")

    # Its preview, then hire: the organization has no position yet, so it opens one first.
    cards.first.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text(name)
    console.shot("preview")
    page.locator("[data-testid=hire]").click()
    expect(page.locator("h1")).to_have_text(says(language, "Hire %(name)s", name=name))
    page.get_by_role("link", name=says(language, "Open a position")).click()
    expect(page.locator("h1")).to_have_text(says(language, "Open a position"))
    page.fill("#field-title", "Health live-room host")
    page.fill("#field-department", "Outpatient service")
    page.fill("#field-required_languages", "zh, en")
    with page.expect_navigation():
        page.get_by_role("button", name=says(language, "Open the position")).click()

    # Back on the hire form, the new position chosen.
    expect(page.locator("h1")).to_have_text(says(language, "Hire %(name)s", name=name))
    expect(page.locator("#field-position option:checked")).to_contain_text("Health live-room host")
    page.fill("#field-seats", "2")
    console.shot("hire")
    with page.expect_navigation():
        page.get_by_role("button", name=says(language, "Offer the position")).click()

    # The onboarding checklist.
    employment = Employment.objects.for_organization(people.alpha).get()
    assert (employment.avatar_id, employment.seats, employment.status) == (
        bilingual.pk,
        2,
        "offered",
    )
    heading = says(
        language,
        "Onboarding: %(name)s as %(title)s",
        name=name,
        title="Health live-room host",
    )
    expect(page.locator("h1")).to_have_text(heading)
    status = page.locator("[data-testid=status]")
    expect(status).to_have_text(says(language, "Offered"))
    console.shot("offered")

    def step(name: str):
        return page.locator(f"form:has(input[name=step][value={name}])")

    _send(page, step("transition"), says(language, "Start onboarding"))
    expect(status).to_have_text(says(language, "Onboarding"))

    persona = step("persona")
    persona.locator("textarea[name=persona]").fill("Warm, precise; speaks plainly to patients.")
    persona.locator("input[name=persona_reviewed]").check()
    _send(page, persona, says(language, "Save the persona"))
    voice = step("voice")
    voice.locator("input[name=voice_id]").fill("warm-1")
    _send(page, voice, says(language, "Choose this voice"))
    entry = step("entry")
    entry.locator("textarea[name=questions]").fill("门诊几点开门？\n门诊时间")
    entry.locator("textarea[name=answer]").fill("门诊每天早上八点开门。")
    entry.locator("input[name=language]").fill("zh-CN")
    _send(page, entry, says(language, "Add and attach"))
    console.shot("checklist-done")

    # Activated, the console shows the new employee's page.
    _send(page, step("transition"), says(language, "Activate the employee"))
    employee_path = f"/console/o/{people.alpha.slug}/employees/{employment.pk}/"
    expect(page).to_have_url(re.compile(re.escape(console.url(employee_path)) + "(#.*)?$"))
    expect(page.locator("ul.messages")).to_contain_text(
        says(language, "Onboarding is complete: the employee is active.")
    )
    expect(page.locator("h1")).to_contain_text(says(language, "Active"))
    console.shot("active")
    employment.refresh_from_db()
    assert employment.status == "active"

    # Listed among the employees; the avatar not hired is not.
    page.locator("nav.side a[data-section=employees]").click()
    expect(page.locator(f'main a[href="{employee_path}"]').first).to_be_visible()
    assert chinese.name_zh not in console.text() and chinese.name_en not in console.text()
    console.shot("employees")
