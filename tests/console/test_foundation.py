"""The console's foundation: sign-in, the organization from the URL, roles, submit-once tokens,
drafts kept across an expired session, time zones and languages. Real Django stack (sessions,
middleware, templates, the cache); nothing simulated."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from ironbowl.console import charts, forms
from ironbowl.console.nav import SECTIONS
from tenants.roles import Role
from tests.console.conftest import without_tokens
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_sign_in_with_the_right_password_goes_to_the_organization(owner_a):
    client = Client()
    page = client.get(reverse("console:sign-in"))
    assert page.status_code == 200
    response = client.post(
        reverse("console:sign-in"), {"email": owner_a.user.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 302
    home = client.get(response["Location"])
    assert home.status_code == 302
    assert home["Location"] == reverse("console:dashboard", args=[owner_a.organization.slug])


def test_a_wrong_password_is_refused_next_to_the_form(owner_a):
    response = Client().post(
        reverse("console:sign-in"), {"email": owner_a.user.email, "password": "nope"}
    )
    assert response.status_code == 400
    assert "The email address or password is wrong." in response.content.decode()


def test_empty_fields_are_named(db):
    response = Client().post(reverse("console:sign-in"), {"email": "", "password": ""})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Enter your email address." in html and "Enter your password." in html


def test_sign_in_refuses_after_too_many_failures(owner_a):
    client = Client()
    for _ in range(10):
        client.post(reverse("console:sign-in"), {"email": owner_a.user.email, "password": "x"})
    response = client.post(
        reverse("console:sign-in"), {"email": owner_a.user.email, "password": PASSWORD}
    )
    assert response.status_code == 429


def test_next_is_followed_only_on_this_site(owner_a):
    client = Client()
    response = client.post(
        reverse("console:sign-in") + "?next=https://evil.example/",
        {"email": owner_a.user.email, "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("console:home")


def test_signed_out_pages_go_to_sign_in_with_the_way_back(org_a):
    url = reverse("console:dashboard", args=[org_a.slug])
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:sign-in"))
    assert "next=%2Fconsole%2Fo%2Falpha-hospital%2F" in response["Location"]


def test_htmx_requests_are_sent_to_sign_in_with_a_client_redirect(org_a):
    url = reverse("console:dashboard", args=[org_a.slug])
    response = Client().get(url, headers={"HX-Request": "true", "HX-Current-URL": url})
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("console:sign-in"))


def test_another_organization_and_a_missing_one_answer_the_same(console_a, org_b):
    foreign = console_a.get(reverse("console:dashboard", args=[org_b.slug]))
    missing = console_a.get(reverse("console:dashboard", args=["no-such-org"]))
    assert foreign.status_code == missing.status_code == 404
    assert without_tokens(foreign.content) == without_tokens(missing.content)
    assert org_b.name.encode() not in foreign.content


def test_the_switcher_lists_only_ones_own_organizations(console_a, owner_a, org_b):
    html = console_a.get(reverse("console:dashboard", args=[owner_a.organization.slug])).content
    assert owner_a.organization.name.encode() in html
    assert org_b.name.encode() not in html
    assert org_b.slug.encode() not in html


def test_the_side_bar_shows_only_what_the_role_may_open(org_a, member_factory, console_for):
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    html = analyst.get(reverse("console:dashboard", args=[org_a.slug])).content.decode()
    assert 'data-section="analytics"' in html
    assert 'data-section="billing"' not in html
    billing_url = reverse("console:billing", args=[org_a.slug])
    denied = analyst.get(billing_url)
    assert denied.status_code == 403
    assert "Analyst" in denied.content.decode()


def test_every_section_is_reachable_for_an_owner(console_a, org_a):
    for section in SECTIONS:
        response = console_a.get(reverse(section.url_name, args=[org_a.slug]))
        assert response.status_code == 200, section.key


def test_times_are_shown_in_the_organizations_time_zone(console_a, org_a):
    org_a.time_zone = "America/New_York"
    org_a.save()
    html = console_a.get(reverse("console:dashboard", args=[org_a.slug])).content.decode()
    assert "America/New_York" in html


def test_the_language_switcher_changes_the_console_language(console_a, org_a):
    url = reverse("console:dashboard", args=[org_a.slug])
    console_a.post(reverse("set_language"), {"language": "zh-hans", "next": url})
    html = console_a.get(url).content.decode()
    assert 'lang="zh-hans"' in html
    assert "退出" in html  # "Sign out"


def test_platform_pages_are_for_staff_only(console_a, owner_a):
    assert console_a.get(reverse("console:pools")).status_code == 404
    owner_a.user.is_staff = True
    owner_a.user.save()
    assert console_a.get(reverse("console:pools")).status_code == 200


def test_console_404_is_a_page_and_the_api_404_stays_json(console_a):
    page = console_a.get("/console/o/alpha-hospital/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
    api = console_a.get("/api/v1/no-such-endpoint/")
    assert api["Content-Type"].startswith("application/json")


def test_submit_once_acts_once_per_token(rf, owner_a):
    calls = []

    def act():
        calls.append(1)
        return forms.redirect("/console/")

    request = rf.post("/x/", {"submit_token": "t1"})
    request.user = owner_a.user
    first = forms.submit_once(request, act)
    second = forms.submit_once(request, act)
    assert len(calls) == 1
    assert first["Location"] == second["Location"] == "/console/"


def test_a_refused_submit_frees_its_token(rf, owner_a):
    from django.http import HttpResponse

    outcomes = iter([HttpResponse("errors", status=400), forms.redirect("/done/")])
    request = rf.post("/x/", {"submit_token": "t2"})
    request.user = owner_a.user
    assert forms.submit_once(request, lambda: next(outcomes)).status_code == 400
    assert forms.submit_once(request, lambda: next(outcomes))["Location"] == "/done/"


def test_serializer_errors_land_next_to_their_fields():
    from rest_framework import serializers

    class Named(serializers.Serializer):
        name = serializers.CharField(max_length=3)
        size = serializers.IntegerField(min_value=1)

    form = forms.Form.of({"name": "toolong", "size": "0"})
    assert forms.validate(Named, form, {"name": "toolong", "size": "0"}) is None
    assert set(form.errors) == {"name", "size"}
    assert form.value("name") == "toolong"


def test_a_list_items_errors_land_next_to_the_list_field():
    """DRF names an item's error by its index ("skills.1"); the form has one box for the list,
    so the message is shown there (every page, one rule)."""
    from rest_framework import serializers

    class Tagged(serializers.Serializer):
        skills = serializers.ListField(child=serializers.ChoiceField(choices=["a", "b"]))
        nested = serializers.DictField(child=serializers.IntegerField())

    form = forms.Form.of({})
    data = {"skills": ["a", "juggler", "clown"], "nested": {"size": "big"}}
    assert forms.validate(Tagged, form, data) is None
    assert set(form.errors) == {"skills", "nested.size"}
    assert len(form.errors["skills"]) == 2 and "juggler" in form.errors["skills"][0]


def test_an_expired_session_keeps_what_was_typed(client, org_a, owner_a):
    """A POST that arrives signed out is not acted on; after sign-in the page shows the draft."""
    url = reverse("console:dashboard", args=[org_a.slug])
    response = client.post(url, {"name": "Night desk", "password": "never-kept"})
    assert response.status_code == 302
    client.post(response["Location"], {"email": owner_a.user.email, "password": PASSWORD})
    assert client.session["console.drafts"][url] == {"name": "Night desk"}


def test_line_and_bar_charts_escape_their_labels():
    svg = charts.line_chart(["<b>", "2"], [charts.Series("<x>", [1, None])], title="t&t")
    assert "<b>" not in svg and "&lt;x&gt;" in svg
    bars = charts.bar_chart([("<script>", 3)], title="bars")
    assert "<script>" not in bars
    assert charts.nice_ceiling(0) == 1.0 and charts.nice_ceiling(7) == 10.0


def test_opening_pages_does_not_write_the_session_each_time(console_a, org_a):
    """The last organization used is remembered once, not rewritten by every page (htmx polls
    and board re-fetches would write the session row for each)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("console:dashboard", args=[org_a.slug])
    console_a.get(url)
    with CaptureQueriesContext(connection) as queries:
        console_a.get(url)
    writes = [q["sql"] for q in queries if "django_session" in q["sql"] and "UPDATE" in q["sql"]]
    assert writes == []
