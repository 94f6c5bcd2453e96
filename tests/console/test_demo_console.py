"""What `make run` shows in the console: every section opens for each demo role of each demo
organization, in English and in Simplified Chinese, with the demo's own rows on it.

Runs the real demo seed (as tests/platform/test_demo.py does) and the real console pages through
Django's test client; nothing is simulated."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from ironbowl.console.nav import SECTIONS
from ironbowl.demo import DEMO_ORGANIZATIONS, seed_demo
from tenants.models import Membership, Organization, User

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    seed_demo()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_section_opens_for_every_demo_role(demo, language):
    for spec in DEMO_ORGANIZATIONS:
        organization = Organization.objects.get(slug=spec.slug)
        for membership in Membership.objects.for_organization(organization):
            client = Client(headers={"accept-language": language})
            client.force_login(User.objects.get(pk=membership.user_id))
            dashboard = client.get(reverse("console:dashboard", args=[organization.slug]))
            assert dashboard.status_code == 200
            assert f'lang="{language}"' in dashboard.content.decode()
            opened = [
                s for s in SECTIONS if f'data-section="{s.key}"' in dashboard.content.decode()
            ]
            assert opened, membership.role
            for section in opened:
                response = client.get(reverse(section.url_name, args=[organization.slug]))
                assert response.status_code == 200, (organization.slug, membership.role, section)
