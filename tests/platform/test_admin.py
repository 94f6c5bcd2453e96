"""Django admin works for platform staff across organizations, and only for them."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from tests import factories


@pytest.fixture
def staff_client(db):
    staff = factories.UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def test_every_registered_model_has_a_working_changelist(staff_client, org_a, org_b):
    factories.StationFactory(organization=org_a, name="Alpha lobby")
    factories.StationFactory(organization=org_b, name="Beta hotline")
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = staff_client.get(url)
        assert response.status_code == 200, url
    stations = staff_client.get(reverse("admin:scheduling_station_changelist")).content.decode()
    assert "Alpha lobby" in stations and "Beta hotline" in stations


def test_members_without_staff_flag_cannot_open_the_admin(owner_a):
    client = Client()
    client.force_login(owner_a.user)
    response = client.get(reverse("admin:tenants_organization_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_audit_log_is_read_only_in_the_admin(staff_client, org_a):
    entry = factories.AuditEntryFactory(organization=org_a)
    change = reverse("admin:tenants_auditentry_change", args=[entry.pk])
    assert staff_client.get(change).status_code == 200
    delete = reverse("admin:tenants_auditentry_delete", args=[entry.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
