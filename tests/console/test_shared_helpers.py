"""The console's shared helpers, each with one home: how money and percentages are written, how a
typed list is split, how a digital employee is named, which stations a member operates, and the
pages that use them (paging that keeps the filters, the board's latency unit, labels with their
own punctuation).

Real: templates, the ORM, guardian's grants, Django's test client. Nothing is simulated.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import translation

from avatars.models import Position
from ironbowl.console import formats, inputs, names
from scheduling import selectors
from scheduling import services as station_services
from tenants.audit import Actor
from tenants.roles import Role
from tests import factories
from tests.avatars.factories import EmploymentFactory, ready_avatar

pytestmark = pytest.mark.django_db


def url(name: str, org, *args) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


# --- Money and percentages -----------------------------------------------------------------------


def test_money_is_exact_to_the_cent_with_its_currency_first():
    assert formats.money(Decimal("1234.5"), "CNY") == "CNY 1,234.50"
    assert formats.money(Decimal("-0.5"), "USD") == "USD -0.50"
    assert formats.money("30", "CNY") == "CNY 30.00"  # as a snapshot stores it
    assert formats.money(None, "CNY") == "—"
    assert formats.price(Decimal("0.012500"), "CNY") == "CNY 0.0125"
    assert formats.exact(Decimal("12500.250")) == "12,500.25"


def test_a_percentage_has_no_space_before_its_sign():
    assert formats.percent(6 / 7) == "85.7%"
    assert formats.percent(Decimal("0.1234"), 2) == "12.34%"
    assert formats.percent(Decimal("0.06"), None) == "6%"
    assert formats.percent(None) == "—"


def test_templates_write_money_and_percentages_the_same_way():
    template = Template("{% load console %}{{ a|money:c }} · {{ p|price:c }} · {{ s|percent:0 }}")
    rendered = template.render(
        Context({"a": Decimal("2999"), "p": Decimal("0.5"), "c": "CNY", "s": 0.875})
    )
    assert rendered == "CNY 2,999.00 · CNY 0.5 · 88%"


# --- Typed lists ---------------------------------------------------------------------------------


def test_a_typed_list_splits_at_the_same_separators_everywhere():
    typed = " zh-CN, en-US；yue-HK、ja-JP; ko-KR  fr-FR，de-DE "
    assert inputs.items_of(typed) == [
        "zh-CN",
        "en-US",
        "yue-HK",
        "ja-JP",
        "ko-KR",
        "fr-FR",
        "de-DE",
    ]
    assert inputs.items_of(None) == []
    assert inputs.as_list("a") == ["a"] and inputs.as_list(["a", 1]) == ["a", "1"]
    assert inputs.as_list("") == [] and inputs.as_list(None) == []


def test_a_positions_languages_may_be_separated_by_chinese_semicolons(console_a, org_a):
    response = console_a.post(
        url("position-new", org_a),
        {"title": "导医", "headcount": "1", "required_languages": "zh-CN；en-US"},
    )
    assert response.status_code == 302
    position = Position.objects.for_organization(org_a).get()
    assert position.required_languages == ["zh-CN", "en-US"]


# --- Names ---------------------------------------------------------------------------------------


def test_an_employee_is_named_in_the_pages_language():
    with translation.override("zh-hans"):
        assert names.display_name("小安", "Ann") == "小安"
        assert names.display_name("", "Ann") == "Ann"
    with translation.override("en"):
        assert names.display_name("小安", "Ann") == "Ann"
        assert names.display_name("小安", "") == "小安"


def test_analytics_names_employees_in_the_pages_language_too(console_a, org_a):
    EmploymentFactory(
        organization=org_a, avatar=ready_avatar(visibility="public", name_zh="小安", name_en="Ann")
    )
    english = console_a.get(url("analytics-roi", org_a)).content.decode()
    console_a.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    chinese = console_a.get(url("analytics-roi", org_a)).content.decode()
    assert re.search(r"<option [^>]*>Ann · ", english) and "小安 · " not in english
    assert re.search(r"<option [^>]*>小安 · ", chinese) and "Ann · " not in chinese


# --- Who operates which station ------------------------------------------------------------------


def test_the_stations_a_member_operates(org_a, org_b, owner_a, member_factory):
    mine, granted = (factories.StationFactory(organization=org_a) for _ in range(2))
    factories.StationFactory(organization=org_b)
    operator = member_factory(org_a, Role.OPERATOR)
    station_services.grant_station_operator(
        Actor(user=owner_a.user, role=owner_a.role), granted, operator
    )
    analyst = member_factory(org_a, Role.ANALYST)

    def operable(membership) -> set:
        found = selectors.stations_operable_by(org_a, membership.user, membership.role)
        return set(found.values_list("pk", flat=True))

    assert operable(owner_a) == {mine.pk, granted.pk}  # every station, none of org_b's
    assert operable(member_factory(org_a, Role.ADMIN)) == {mine.pk, granted.pk}
    assert operable(operator) == {granted.pk}
    assert operable(analyst) == set()


def test_an_operator_is_refused_an_ungranted_station_with_the_same_words_everywhere(
    org_a, member_factory, console_for
):
    station = factories.StationFactory(organization=org_a)
    operator = console_for(member_factory(org_a, Role.OPERATOR))
    refused = operator.post(url("station-edit", org_a, station.pk), {"name": "Mine now"})
    assert refused.status_code == 403
    assert "You do not operate this station." in refused.content.decode()
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    by_role = analyst.post(url("station-edit", org_a, station.pk), {"name": "Mine now"})
    assert by_role.status_code == 403 and "Your role (" in by_role.content.decode()


# --- Pages ---------------------------------------------------------------------------------------


def test_page_links_keep_the_filters(console_a, org_a):
    for n in range(55):
        factories.StationFactory(organization=org_a, name=f"Room {n:02d}", kind="kiosk")
    first = console_a.get(url("stations", org_a), {"kind": "kiosk"}).content.decode()
    following = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "kind=kiosk" in following and "page=2" in following
    second = console_a.get(url("stations", org_a) + following).content.decode()
    assert "Room 54" in second and "Page 2 of 2" in second
    assert re.search(r'rel="prev" href="[^"]*page=1', second)


def test_the_boards_latency_unit_comes_from_the_page(console_a, org_a):
    page = console_a.get(url("board", org_a)).content.decode()
    assert 'data-latency-format="{ms} ms"' in page


def test_a_switched_off_station_is_labelled_as_such(console_a, org_a):
    factories.StationFactory(organization=org_a, name="Old room", is_active=False)
    page = console_a.get(url("schedule-create", org_a)).content.decode()
    assert ">Old room (switched off)</option>" in page
