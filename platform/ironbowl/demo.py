"""The demo world that `make run` loads: fictional organizations with a member in every role.

The vendor publishes four avatars (Mandarin, Cantonese, English, bilingual); the hospital hires a
health live-stream anchor and the market-supervision bureau a 24/7 service-desk agent that answers
from a bilingual knowledge base. The inference pools of the embedded default are created, and each
institution runs a short system check on a local worker (see demo_inference.py). The anchor is
rostered Monday to Friday at 19:00 (with a rehearsal minutes after seeding) and the desk around
the clock (see demo_scheduling.py). Each avatar's version 1 is made here, not built from footage
(a build needs minutes of real video of a person): the seed writes a drawn portrait and a stated
voice profile into the version's bundle, under a real consent with a recorded (synthetic) clip.
"""

from __future__ import annotations

import dataclasses

from django.db import transaction

from ironbowl.demo_analytics import seed_analytics
from ironbowl.demo_hr import seed_hr
from ironbowl.demo_inference import seed_inference
from ironbowl.demo_scheduling import seed_scheduling
from scheduling import services as scheduling
from scheduling.models import Station
from tenants import services as tenants
from tenants.audit import Actor
from tenants.models import Membership, Organization, User
from tenants.roles import Role

DEMO_PASSWORD = "ironbowl-demo"  # noqa: S105  (a published demo login, not a secret)
PLATFORM_ADMIN = "platform@ironbowl.example"


@dataclasses.dataclass(frozen=True)
class DemoOrganization:
    slug: str
    name: str
    kind: str
    stations: tuple[tuple[str, str], ...]


DEMO_ORGANIZATIONS = (
    DemoOrganization("lumen-avatars", "Lumen Avatar Studio · 流明数字人工作室", "vendor", ()),
    DemoOrganization(
        "qinghe-hospital",
        "Qinghe People's Hospital · 清河人民医院",
        "hospital",
        (
            ("Health live room · 健康直播间", "live_room"),
            ("Outpatient lobby kiosk · 门诊大厅", "kiosk"),
        ),
    ),
    DemoOrganization(
        "lanxi-market-bureau",
        "Lanxi Market Supervision Bureau · 兰溪市场监管局",
        "market_supervision",
        (
            ("24/7 service desk · 全天候服务台", "web_widget"),
            ("Consumer hotline · 消费者热线", "hotline"),
        ),
    ),
)


def demo_email(slug: str, role: str) -> str:
    return f"{role}@{slug}.example"


@transaction.atomic
def seed_demo() -> list[str]:
    """Create the demo world if it is missing. Safe to run again: existing data is kept."""
    created: list[str] = []
    if not User.objects.filter(email=PLATFORM_ADMIN).exists():
        User.objects.create_superuser(PLATFORM_ADMIN, DEMO_PASSWORD, full_name="Platform Admin")
        created.append(PLATFORM_ADMIN)
    for demo in DEMO_ORGANIZATIONS:
        organization = Organization.objects.filter(slug=demo.slug).first()
        if organization is None:
            owner = _user(demo_email(demo.slug, Role.OWNER), f"{demo.slug} owner")
            organization = tenants.create_organization(
                slug=demo.slug, name=demo.name, kind=demo.kind, owner=owner
            )
            created.append(demo.slug)
        members = Membership.objects.for_organization(organization)
        actor = Actor(user=members.get(role=Role.OWNER).user, role=Role.OWNER)
        for role in Role:
            email = demo_email(demo.slug, role)
            if not members.filter(user__email=email).exists():
                tenants.add_member(actor, organization, _user(email, f"{demo.slug} {role}"), role)
        for name, kind in demo.stations:
            if not Station.objects.for_organization(organization).filter(name=name).exists():
                scheduling.create_station(actor, organization, name=name, kind=kind)
    created.extend(seed_hr())
    created.extend(seed_inference([d.slug for d in DEMO_ORGANIZATIONS if d.kind != "vendor"]))
    created.extend(seed_scheduling())
    created.extend(seed_analytics())
    return created


def _user(email: str, full_name: str) -> User:
    user = User.objects.filter(email=email).first()
    return user or User.objects.create_user(email, DEMO_PASSWORD, full_name=full_name)


def demo_logins() -> list[str]:
    lines = [f"  platform staff (Django admin): {PLATFORM_ADMIN}"]
    for demo in DEMO_ORGANIZATIONS:
        roles = ", ".join(Role.values)
        lines.append(f"  {demo.name}: <role>@{demo.slug}.example  (role: {roles})")
    lines.append(f"  password for all: {DEMO_PASSWORD}")
    return lines
