"""factory_boy factories for the project's models."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.hashers import make_password

from scheduling.models import Station, StationKind
from tenants import services
from tenants.audit import SYSTEM
from tenants.models import ApiKey, AuditEntry, Invitation, Membership, Organization, User
from tenants.roles import Permission, Role

PASSWORD = "correct horse battery staple"
_HASHED = make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"person{n}@example.org")
    full_name = factory.Faker("name")
    password = _HASHED


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.Sequence(lambda n: f"Organization {n}")
    kind = "hospital"
    time_zone = "Asia/Shanghai"
    locale = "en"  # messages asserted in English; zh-hans is covered by tests/platform/test_i18n.py


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class InvitationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.org")
    role = Role.ANALYST
    token_hash = factory.Sequence(lambda n: f"{n:064x}")
    expires_at = factory.Faker("future_datetime", tzinfo=__import__("datetime").UTC)


class StationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Station

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Live room {n}")
    kind = StationKind.LIVE_ROOM


class AuditEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEntry

    organization = factory.SubFactory(OrganizationFactory)
    actor_label = "system"
    action = "test.event"
    object_type = "tests.thing"
    object_id = factory.Sequence(str)


def make_api_key(
    organization: Organization, scopes: list[str] | None = None, name: str = "machine"
) -> tuple[ApiKey, str]:
    """A real API key through the service (hashing included); returns it with its token."""
    return services.create_api_key(
        SYSTEM,
        organization,
        name=name,
        scopes=scopes
        if scopes is not None
        else [
            Permission.ORGANIZATION_VIEW,
            Permission.STATIONS_VIEW,
            Permission.STATIONS_MANAGE,
            Permission.MEMBERS_VIEW,
            Permission.AUDIT_VIEW,
        ],
    )


def api_key_factory(organization: Organization, **kwargs: Any) -> ApiKey:
    return make_api_key(organization, **kwargs)[0]
