"""Who may do what: every endpoint and action, tried by a member in each role.

The table below spells out the expected answer for each role by hand; a separate test checks it
against the one matrix in tenants/roles.py, and another that it covers every action the API has.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.utils import timezone

from avatars import uploads as upload_services
from inference import capacity
from inference import services as inference_services
from inference.models import WorkerPool
from ironbowl.api.base import OrganizationScoped
from ironbowl.billing.models import Notification, Statement
from scheduling import services as scheduling_services
from scheduling.models import Holiday, HolidayCalendar
from tenants import services
from tenants.audit import SYSTEM, Actor
from tenants.roles import MATRIX, Permission, Role
from tests import factories
from tests.avatars import factories as avatar_factories
from tests.scheduling import duty_world
from tests.support import database_rows

EVERYONE = frozenset(Role)
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
VIEWERS = frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST})
AUDITORS = frozenset({Role.OWNER, Role.ADMIN, Role.ANALYST})
KNOWLEDGE_EDITORS = frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR})
UPLOADERS = frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR})
WORKLOAD_MANAGERS = frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR})
# An event that is recent whenever the table is read (an old one would be refused as too old).
EVENT_NOW = dt.datetime.now(dt.UTC).isoformat()
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@dataclass(frozen=True)
class Row:
    name: str  # "<view class>.<action>", as in the view's permission_map
    request: str  # "<METHOD> <path under /api/v1/orgs/{org}/>", with {target ids} filled in
    permission: Permission
    allowed: frozenset[Role]
    success: int = 200
    body: dict[str, Any] | bytes | None = None  # bytes: sent raw, as an upload's chunk
    # What a denied role reads, when it is more useful than naming the role.
    denial: dict[Role, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


P = Permission
# fmt: off
ROWS = [
    Row("EventIntakeView.post", "POST events/", P.EVENTS_WRITE, MANAGERS,
        body={"events": [{"id": "role-matrix-1", "type": "visit", "occurred_at": EVENT_NOW}]}),
    Row("UploadViewSet.list", "GET uploads/", P.UPLOADS_MANAGE, UPLOADERS),
    Row("UploadViewSet.retrieve", "GET uploads/{upload}/", P.UPLOADS_MANAGE, UPLOADERS),
    Row("UploadViewSet.create", "POST uploads/", P.UPLOADS_MANAGE, UPLOADERS, 201,
        body={"purpose": "document", "filename": "faq.md", "content_type": "text/markdown",
              "size": 10}),
    Row("UploadViewSet.update", "PUT uploads/{upload}/", P.UPLOADS_MANAGE, UPLOADERS,
        body=b"abc", headers={"Content-Range": "bytes 0-2/3"}),
    Row("UploadViewSet.complete", "POST uploads/{full_upload}/complete/", P.UPLOADS_MANAGE,
        UPLOADERS, body={"sha256": ABC_SHA256}),
    Row("ConsentViewSet.list", "GET consents/", P.AVATARS_VIEW, VIEWERS),
    Row("ConsentViewSet.retrieve", "GET consents/{consent}/", P.AVATARS_VIEW, VIEWERS),
    Row("ConsentViewSet.create", "POST consents/", P.AVATARS_MANAGE, MANAGERS, 201,
        body={"avatar": "{build_avatar}", "subject_name": "Li Na", "statement": "I agree.",
              "clip": "{consent_clip}", "scope": "any", "expires_at": "2099-01-01T00:00:00Z"}),
    Row("ConsentViewSet.revoke", "POST consents/{consent}/revoke/", P.AVATARS_MANAGE, MANAGERS,
        body={"reason": "Withdrawn."}),
    Row("BuildViewSet.list", "GET builds/", P.AVATARS_VIEW, VIEWERS),
    Row("BuildViewSet.retrieve", "GET builds/{build}/", P.AVATARS_VIEW, VIEWERS),
    Row("BuildViewSet.create", "POST builds/", P.AVATARS_MANAGE, MANAGERS, 201,
        body={"avatar": "{build_avatar}", "footage": "{footage}", "consent": "{build_consent}"}),
    Row("BuildViewSet.cancel", "POST builds/{build}/cancel/", P.AVATARS_MANAGE, MANAGERS),
    Row("OrganizationDetailView.get", "GET ", P.ORGANIZATION_VIEW, EVERYONE),
    Row("OrganizationDetailView.patch", "PATCH ", P.ORGANIZATION_MANAGE, MANAGERS,
        body={"name": "Renamed"}),
    Row("MemberViewSet.list", "GET members/", P.MEMBERS_VIEW, EVERYONE),
    Row("MemberViewSet.retrieve", "GET members/{analyst}/", P.MEMBERS_VIEW, EVERYONE),
    Row("MemberViewSet.partial_update", "PATCH members/{analyst}/", P.MEMBERS_MANAGE, MANAGERS,
        body={"role": "billing"}),
    Row("MemberViewSet.destroy", "DELETE members/{analyst}/", P.MEMBERS_MANAGE, MANAGERS, 204),
    Row("InvitationViewSet.list", "GET invitations/", P.MEMBERS_VIEW, EVERYONE),
    Row("InvitationViewSet.retrieve", "GET invitations/{invitation}/", P.MEMBERS_VIEW, EVERYONE),
    Row("InvitationViewSet.create", "POST invitations/", P.MEMBERS_MANAGE, MANAGERS, 201,
        body={"email": "new@example.org", "role": "analyst"}),
    Row("InvitationViewSet.revoke", "POST invitations/{invitation}/revoke/", P.MEMBERS_MANAGE,
        MANAGERS),
    Row("ApiKeyViewSet.list", "GET api-keys/", P.API_KEYS_MANAGE, MANAGERS),
    Row("ApiKeyViewSet.retrieve", "GET api-keys/{api_key}/", P.API_KEYS_MANAGE, MANAGERS),
    Row("ApiKeyViewSet.create", "POST api-keys/", P.API_KEYS_MANAGE, MANAGERS, 201,
        body={"name": "ci", "scopes": ["stations.view"]}),
    Row("ApiKeyViewSet.revoke", "POST api-keys/{api_key}/revoke/", P.API_KEYS_MANAGE, MANAGERS),
    Row("AuditEntryViewSet.list", "GET audit/", P.AUDIT_VIEW, AUDITORS),
    Row("AuditEntryViewSet.retrieve", "GET audit/{audit_entry}/", P.AUDIT_VIEW, AUDITORS),
    Row("StationViewSet.list", "GET stations/", P.STATIONS_VIEW, VIEWERS),
    Row("StationViewSet.retrieve", "GET stations/{station}/", P.STATIONS_VIEW, VIEWERS),
    Row("StationViewSet.create", "POST stations/", P.STATIONS_MANAGE, MANAGERS, 201,
        body={"name": "Lobby kiosk", "kind": "kiosk"}),
    # Operators operate only the stations granted to them; this one is not.
    Row("StationViewSet.partial_update", "PATCH stations/{station}/", P.STATIONS_OPERATE,
        MANAGERS, body={"description": "moved"},
        denial={Role.OPERATOR: "You do not operate this station."}),
    Row("StationViewSet.destroy", "DELETE stations/{station}/", P.STATIONS_MANAGE, MANAGERS, 204),
    Row("StationViewSet.operators", "GET stations/{station}/operators/", P.STATIONS_VIEW,
        VIEWERS),
    Row("StationViewSet.grant_operator", "POST stations/{station}/operators/",
        P.STATIONS_MANAGE, MANAGERS, 201, body={"member": "{operator}"}),
    Row("StationViewSet.revoke_operator",
        "DELETE stations/{station}/operators/{granted_operator}/", P.STATIONS_MANAGE, MANAGERS,
        204),
    Row("StationViewSet.rotate_widget_key", "POST stations/{widget}/rotate-widget-key/",
        P.STATIONS_MANAGE, MANAGERS),
    Row("ShiftViewSet.retrieve", "GET shifts/{planned_shift}/", P.STATIONS_VIEW, VIEWERS),
    # Operators act on shifts only at the stations granted to them; this one is not.
    Row("ShiftViewSet.start_early", "POST shifts/{planned_shift}/start-early/",
        P.STATIONS_OPERATE, MANAGERS, body={"reason": "Rehearsal."},
        denial={Role.OPERATOR: "You do not operate this shift's station."}),
    Row("ShiftViewSet.stop", "POST shifts/{on_duty_shift}/stop/", P.STATIONS_OPERATE, MANAGERS,
        body={}, denial={Role.OPERATOR: "You do not operate this shift's station."}),
    Row("ShiftViewSet.take_over", "POST shifts/{on_duty_shift}/take-over/", P.STATIONS_OPERATE,
        MANAGERS, body={}, denial={Role.OPERATOR: "You do not operate this shift's station."}),
    Row("ShiftViewSet.hand_back", "POST shifts/{taken_over_shift}/hand-back/",
        P.STATIONS_OPERATE, MANAGERS, body={},
        denial={Role.OPERATOR: "You do not operate this shift's station."}),
    Row("ScheduleViewSet.list", "GET schedules/", P.STATIONS_VIEW, VIEWERS),
    Row("ScheduleViewSet.retrieve", "GET schedules/{schedule}/", P.STATIONS_VIEW, VIEWERS),
    # Operators change schedules only at the stations granted to them; these are not.
    Row("ScheduleViewSet.create", "POST schedules/", P.STATIONS_MANAGE, MANAGERS, 201,
        body={"employment": "{schedule_employment}", "station": "{schedule_station}",
              "rrule": "FREQ=WEEKLY;BYDAY=SA", "start_time": "10:00", "duration_minutes": 60,
              "valid_from": "2099-01-01"},
        denial={Role.OPERATOR: "You do not operate this station."}),
    Row("ScheduleViewSet.partial_update", "PATCH schedules/{schedule}/", P.STATIONS_MANAGE,
        MANAGERS, body={"duration_minutes": 90},
        denial={Role.OPERATOR: "You do not operate this station."}),
    Row("ScheduleViewSet.destroy", "DELETE schedules/{schedule}/", P.STATIONS_MANAGE, MANAGERS,
        204, denial={Role.OPERATOR: "You do not operate this station."}),
    Row("HolidayCalendarViewSet.list", "GET holiday-calendars/", P.STATIONS_VIEW, VIEWERS),
    Row("HolidayCalendarViewSet.retrieve", "GET holiday-calendars/{holiday_calendar}/",
        P.STATIONS_VIEW, VIEWERS),
    Row("HolidayCalendarViewSet.create", "POST holiday-calendars/", P.STATIONS_MANAGE, MANAGERS,
        201, body={"name": "Closures"}),
    Row("HolidayCalendarViewSet.partial_update", "PATCH holiday-calendars/{holiday_calendar}/",
        P.STATIONS_MANAGE, MANAGERS, body={"name": "Public holidays"}),
    Row("HolidayCalendarViewSet.destroy", "DELETE holiday-calendars/{holiday_calendar}/",
        P.STATIONS_MANAGE, MANAGERS, 204),
    Row("HolidayCalendarViewSet.import_days", "POST holiday-calendars/{holiday_calendar}/import/",
        P.STATIONS_MANAGE, MANAGERS,
        body={"days": [{"date": "2099-05-01", "kind": "holiday", "name": "Labour Day"}]}),
    Row("HolidayViewSet.list", "GET holidays/", P.STATIONS_VIEW, VIEWERS),
    Row("HolidayViewSet.retrieve", "GET holidays/{holiday}/", P.STATIONS_VIEW, VIEWERS),
    Row("HolidayViewSet.create", "POST holidays/", P.STATIONS_MANAGE, MANAGERS, 201,
        body={"calendar": "{holiday_calendar}", "date": "2099-01-01", "kind": "holiday"}),
    Row("HolidayViewSet.partial_update", "PATCH holidays/{holiday}/", P.STATIONS_MANAGE,
        MANAGERS, body={"name": "National Day"}),
    Row("HolidayViewSet.destroy", "DELETE holidays/{holiday}/", P.STATIONS_MANAGE, MANAGERS, 204),
    Row("RosterViewSet.list", "GET roster/", P.STATIONS_VIEW, VIEWERS),
    Row("RosterViewSet.gaps", "GET roster/gaps/", P.STATIONS_VIEW, VIEWERS),
    Row("KnowledgeEntryViewSet.list", "GET knowledge/entries/", P.KNOWLEDGE_VIEW, VIEWERS),
    Row("KnowledgeEntryViewSet.retrieve", "GET knowledge/entries/{knowledge_entry}/",
        P.KNOWLEDGE_VIEW, VIEWERS),
    Row("KnowledgeEntryViewSet.create", "POST knowledge/entries/", P.KNOWLEDGE_MANAGE,
        KNOWLEDGE_EDITORS, 201,
        body={"questions": ["Opening hours?"], "answer": "9 to 5.", "language": "en-US"}),
    Row("KnowledgeEntryViewSet.partial_update", "PATCH knowledge/entries/{knowledge_entry}/",
        P.KNOWLEDGE_MANAGE, KNOWLEDGE_EDITORS, body={"answer": "9 to 6."}),
    Row("KnowledgeEntryViewSet.destroy", "DELETE knowledge/entries/{knowledge_entry}/",
        P.KNOWLEDGE_MANAGE, KNOWLEDGE_EDITORS, 204),
    # No body: the default mode (validate) answers with a report saying the file is empty.
    Row("KnowledgeEntryViewSet.import_csv", "POST knowledge/entries/import/",
        P.KNOWLEDGE_MANAGE, KNOWLEDGE_EDITORS),
    Row("KnowledgeDocumentViewSet.list", "GET knowledge/documents/", P.KNOWLEDGE_VIEW, VIEWERS),
    Row("KnowledgeDocumentViewSet.retrieve", "GET knowledge/documents/{knowledge_document}/",
        P.KNOWLEDGE_VIEW, VIEWERS),
    Row("KnowledgeDocumentViewSet.create", "POST knowledge/documents/", P.KNOWLEDGE_MANAGE,
        KNOWLEDGE_EDITORS, 201,
        body={"title": "Hours", "content": "9 to 5.", "language": "en-US"}),
    Row("KnowledgeDocumentViewSet.partial_update",
        "PATCH knowledge/documents/{knowledge_document}/", P.KNOWLEDGE_MANAGE, KNOWLEDGE_EDITORS,
        body={"title": "Opening hours"}),
    Row("KnowledgeDocumentViewSet.destroy", "DELETE knowledge/documents/{knowledge_document}/",
        P.KNOWLEDGE_MANAGE, KNOWLEDGE_EDITORS, 204),
    Row("AvatarViewSet.list", "GET avatars/", P.AVATARS_VIEW, VIEWERS),
    Row("AvatarViewSet.retrieve", "GET avatars/{avatar}/", P.AVATARS_VIEW, VIEWERS),
    Row("AvatarViewSet.create", "POST avatars/", P.AVATARS_MANAGE, MANAGERS, 201,
        body={"name_zh": "小安", "languages": ["zh-CN"], "skills": ["service_desk"]}),
    Row("AvatarViewSet.partial_update", "PATCH avatars/{avatar}/", P.AVATARS_MANAGE, MANAGERS,
        body={"description": "Friendly and precise."}),
    Row("AvatarViewSet.destroy", "DELETE avatars/{draft_avatar}/", P.AVATARS_MANAGE, MANAGERS,
        204),
    Row("AvatarViewSet.retire", "POST avatars/{avatar}/retire/", P.AVATARS_MANAGE, MANAGERS,
        body={"reason": "Replaced by a newer avatar."}),
    Row("AvatarViewSet.versions", "GET avatars/{avatar}/versions/", P.AVATARS_VIEW, VIEWERS),
    Row("AvatarViewSet.hires", "GET avatars/{avatar}/hires/", P.AVATARS_VIEW, VIEWERS),
    Row("AvatarViewSet.portrait", "GET avatars/{avatar}/portrait/", P.AVATARS_VIEW, VIEWERS),
    Row("MarketAvatarViewSet.list", "GET market/avatars/", P.MARKET_VIEW, EVERYONE),
    Row("MarketAvatarViewSet.retrieve", "GET market/avatars/{market_avatar}/", P.MARKET_VIEW,
        EVERYONE),
    Row("MarketAvatarViewSet.portrait", "GET market/avatars/{market_avatar}/portrait/",
        P.MARKET_VIEW, EVERYONE),
    Row("PositionViewSet.list", "GET positions/", P.POSITIONS_VIEW, EVERYONE),
    Row("PositionViewSet.retrieve", "GET positions/{position}/", P.POSITIONS_VIEW, EVERYONE),
    Row("PositionViewSet.create", "POST positions/", P.POSITIONS_MANAGE, MANAGERS, 201,
        body={"title": "Night service desk", "required_languages": ["zh-CN"]}),
    Row("PositionViewSet.partial_update", "PATCH positions/{position}/", P.POSITIONS_MANAGE,
        MANAGERS, body={"headcount": 2}),
    Row("PositionViewSet.destroy", "DELETE positions/{position}/", P.POSITIONS_MANAGE, MANAGERS,
        204),
    Row("EmploymentViewSet.list", "GET employments/", P.EMPLOYMENTS_VIEW, EVERYONE),
    Row("EmploymentViewSet.retrieve", "GET employments/{employment}/", P.EMPLOYMENTS_VIEW,
        EVERYONE),
    Row("EmploymentViewSet.transitions", "GET employments/{employment}/transitions/",
        P.EMPLOYMENTS_VIEW, EVERYONE),
    Row("EmploymentViewSet.create", "POST employments/", P.EMPLOYMENTS_MANAGE, MANAGERS, 201,
        body={"avatar": "{market_avatar}", "position": "{position}", "starts_on": "2025-03-01"}),
    Row("EmploymentViewSet.partial_update", "PATCH employments/{employment}/",
        P.EMPLOYMENTS_MANAGE, MANAGERS, body={"persona_reviewed": True}),
    Row("EmploymentViewSet.transition", "POST employments/{employment}/transition/",
        P.EMPLOYMENTS_MANAGE, MANAGERS, body={"to": "onboarding", "reason": "Offer accepted."}),
    Row("EmploymentViewSet.upgrade", "POST employments/{employment}/upgrade/",
        P.EMPLOYMENTS_MANAGE, MANAGERS, body={}),
    Row("EmploymentViewSet.knowledge", "POST employments/{employment}/knowledge/",
        P.EMPLOYMENTS_MANAGE, MANAGERS, body={"entries": ["{knowledge_entry}"]}),
    Row("EmploymentViewSet.detach_knowledge",
        "DELETE employments/{employment}/knowledge/?entries={knowledge_entry}",
        P.EMPLOYMENTS_MANAGE, MANAGERS),
    Row("PerformanceReviewViewSet.list", "GET reviews/", P.REVIEWS_VIEW, AUDITORS),
    Row("PerformanceReviewViewSet.retrieve", "GET reviews/{review}/", P.REVIEWS_VIEW, AUDITORS),
    Row("PerformanceReviewViewSet.partial_update", "PATCH reviews/{review}/", P.REVIEWS_MANAGE,
        AUDITORS, body={"rating": 4, "comments": "Steady."}),
    Row("WorkloadViewSet.list", "GET workloads/", P.WORKLOADS_VIEW, VIEWERS),
    Row("WorkloadViewSet.retrieve", "GET workloads/{workload}/", P.WORKLOADS_VIEW, VIEWERS),
    Row("WorkloadViewSet.events", "GET workloads/{workload}/events/", P.WORKLOADS_VIEW, VIEWERS),
    Row("WorkloadViewSet.interactions", "GET workloads/{workload}/interactions/",
        P.WORKLOADS_VIEW, VIEWERS),
    Row("StationViewSet.open_session", "POST stations/{station}/sessions/", P.WORKLOADS_MANAGE,
        WORKLOAD_MANAGERS, 201, body={"employment": "{session_employment}", "video": False}),
    Row("WorkloadViewSet.create", "POST workloads/", P.WORKLOADS_MANAGE, WORKLOAD_MANAGERS, 201,
        body={"kind": "live", "spec": {"station": "lobby"}}),
    Row("WorkloadViewSet.cancel", "POST workloads/{workload}/cancel/", P.WORKLOADS_MANAGE,
        WORKLOAD_MANAGERS, body={"reason": "Stream ended early."}),
    Row("WorkloadViewSet.script", "POST workloads/{workload}/script/", P.WORKLOADS_MANAGE,
        WORKLOAD_MANAGERS, body={"segments": [{"text": "Flash sale at eight.", "language": "en"}]}),
    Row("CapacityView.get", "GET capacity/", P.WORKLOADS_VIEW, VIEWERS),
    Row("CapacityCalendarView.get", "GET capacity/calendar/?gpu_class=cpu", P.WORKLOADS_VIEW,
        VIEWERS),
    Row("ReservationViewSet.list", "GET reservations/", P.WORKLOADS_VIEW, VIEWERS),
    Row("ReservationViewSet.retrieve", "GET reservations/{reservation}/", P.WORKLOADS_VIEW,
        VIEWERS),
    Row("ReservationViewSet.create", "POST reservations/", P.WORKLOADS_MANAGE, WORKLOAD_MANAGERS,
        201, body={"gpu_class": "cpu", "slots": 1, "starts_at": "2099-01-01T09:00:00Z",
                   "ends_at": "2099-01-01T17:00:00Z", "purpose": "Open day"}),
    Row("ReservationViewSet.destroy", "DELETE reservations/{reservation}/", P.WORKLOADS_MANAGE,
        WORKLOAD_MANAGERS, 204),
    Row("UsageRecordViewSet.list", "GET analytics/usage/", P.ANALYTICS_VIEW, EVERYONE),
    Row("UsageRecordViewSet.summary", "GET analytics/usage/summary/", P.ANALYTICS_VIEW,
        EVERYONE),
    Row("KpiView.get", "GET analytics/kpis/?granularity=hour", P.ANALYTICS_VIEW, EVERYONE),
    Row("ScorecardView.get", "GET analytics/scorecards/", P.ANALYTICS_VIEW, EVERYONE),
    Row("CompareView.get", "GET analytics/compare/?by=station", P.ANALYTICS_VIEW, EVERYONE),
    Row("RoiView.get", "GET analytics/roi/?employment={employment}", P.ANALYTICS_VIEW,
        EVERYONE),
    Row("OutcomeValuesView.get", "GET analytics/outcome-values/", P.ANALYTICS_VIEW, EVERYONE),
    Row("OutcomeValuesView.put", "PUT analytics/outcome-values/", P.ANALYTICS_MANAGE, MANAGERS,
        body={"currency": "CNY", "per_visit": "0.5", "per_interaction": "1",
              "per_viewer_hour": "0.2", "per_handoff_avoided": "5"}),
    Row("BudgetView.get", "GET billing/budget/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("BudgetView.put", "PUT billing/budget/", P.BILLING_MANAGE,
        frozenset({Role.OWNER, Role.BILLING}),
        body={"monthly_amount": "1000.00", "hard_stop": True, "exempt_public_service": True}),
    Row("NotificationViewSet.list", "GET notifications/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("NotificationViewSet.retrieve", "GET notifications/{notification}/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("NotificationViewSet.read", "POST notifications/{notification}/read/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("PlanListView.get", "GET billing/plans/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("SubscriptionView.get", "GET billing/subscription/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("SubscriptionView.post", "POST billing/subscription/", P.BILLING_MANAGE,
        frozenset({Role.OWNER, Role.BILLING}), body={"plan": "standard"}),
    Row("StatementViewSet.list", "GET billing/statements/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("StatementViewSet.retrieve", "GET billing/statements/{statement}/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("StatementViewSet.html", "GET billing/statements/{statement}/html/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("StatementViewSet.pdf", "GET billing/statements/{statement}/pdf/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("StatementViewSet.csv", "GET billing/statements/{statement}/csv/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("BillingAccountView.get", "GET billing/account/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    Row("BillingAccountView.put", "PUT billing/account/", P.BILLING_MANAGE,
        frozenset({Role.OWNER, Role.BILLING}), body={"email": "ap@alpha.example"}),
    Row("BillingAccountView.patch", "PATCH billing/account/", P.BILLING_MANAGE,
        frozenset({Role.OWNER, Role.BILLING}), body={"email": "ap@alpha.example"}),
    # Without Stripe configured (the tests' default) an allowed role is told so.
    Row("BillingPortalView.post", "POST billing/account/portal/", P.BILLING_MANAGE,
        frozenset({Role.OWNER, Role.BILLING}), success=409),
    Row("RefundViewSet.list", "GET billing/refunds/", P.BILLING_VIEW,
        frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
]
# fmt: on


@pytest.fixture
def targets(org_a, owner_a, member_factory, settings, tmp_path) -> dict[str, str]:
    """One of everything the table acts on, in organization A."""
    settings.MEDIA_ROOT = tmp_path  # uploaded bytes and bundles of this test only
    build_avatar = avatar_factories.ready_avatar(organization=org_a)
    full_upload = upload_services.start_upload(
        SYSTEM, org_a, purpose="document", filename="a.txt", content_type="text/plain", size=3
    )
    upload_services.receive_chunk(full_upload, upload_services.ContentRange(0, 2, 3), b"abc")
    station = factories.StationFactory(organization=org_a, name="Main hall")
    granted = member_factory(org_a, Role.OPERATOR)
    scheduling_services.grant_station_operator(SYSTEM, station, granted)
    live_pool = WorkerPool.objects.create(
        name="live-cpu", pipeline="live", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=2, image="local", maximum=2,
    )  # fmt: skip
    WorkerPool.objects.create(  # starting a build submits its workload to this pool
        name="build-cpu", pipeline="build", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=1, image="local", maximum=1, batch=True,
    )  # fmt: skip
    WorkerPool.objects.create(  # opening a conversation submits a session workload
        name="converse-cpu", pipeline="converse", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=4, image="local", maximum=1,
    )  # fmt: skip
    workload, _created = inference_services.submit(
        org_a, kind="live", spec={}, pool_name=live_pool.name
    )
    reservation, _answer = capacity.reserve(
        org_a,
        gpu_class="cpu",
        slots=1,
        starts_at=timezone.now() + dt.timedelta(days=1),
        ends_at=timezone.now() + dt.timedelta(days=1, hours=1),
        holder="api:role-matrix",
    )
    assert reservation is not None
    invitation, _token = services.invite_member(
        Actor(role=Role.OWNER), org_a, email="invitee@example.org", role=Role.ANALYST
    )
    # An offer whose avatar has a newer version to move to.
    employment = avatar_factories.EmploymentFactory(organization=org_a)
    newer = avatar_factories.AvatarVersionFactory(avatar=employment.avatar, number=2)
    employment.avatar.current_version = newer
    employment.avatar.save()
    # Shifts at the station: one planned for tomorrow, one on duty, one a person took over.
    studio = factories.StationFactory(organization=org_a, name="Studio")
    plan = duty_world.schedule(duty_world.hire(org_a), studio)
    now = timezone.now().replace(microsecond=0)
    shifts = {
        name: duty_world.shift(plan, now + offset, minutes=120, **fields)
        for name, offset, fields in (
            ("planned_shift", dt.timedelta(days=1), {}),
            ("on_duty_shift", -dt.timedelta(hours=1), {"state": "on_duty", "on_duty_at": now}),
            ("taken_over_shift", -dt.timedelta(minutes=30), {"state": "taken_over"}),
        )
    }
    # A schedule (no shifts made: its rows are written directly) and a holiday calendar's day.
    # One hire for both (the plan's seats are few): weekday evenings here, Saturdays in the body.
    scheduled = duty_world.hire(org_a)
    evening = duty_world.schedule(
        scheduled, factories.StationFactory(organization=org_a, name="Evening room")
    )
    calendar = HolidayCalendar.objects.create(organization=org_a, name="China")
    holiday = Holiday.objects.create(
        organization=org_a, calendar=calendar, date=dt.date(2099, 10, 1), kind="holiday"
    )
    ids = {
        **{name: shift.pk for name, shift in shifts.items()},
        "schedule": evening.pk,
        "schedule_employment": scheduled.pk,
        "schedule_station": factories.StationFactory(organization=org_a, name="Weekend room").pk,
        "holiday_calendar": calendar.pk,
        "holiday": holiday.pk,
        "upload": avatar_factories.UploadFactory(
            organization=org_a,
            purpose="document",
            filename="a.txt",
            content_type="text/plain",
            size=3,
            received=0,
            status="receiving",
        ).pk,
        "full_upload": full_upload.pk,
        "consent_clip": avatar_factories.UploadFactory(organization=org_a).pk,
        "consent": avatar_factories.ConsentFactory(avatar=build_avatar).pk,
        "build_avatar": build_avatar.pk,
        "footage": avatar_factories.UploadFactory(organization=org_a, purpose="footage").pk,
        "build_consent": build_avatar.current_version.consent_id,
        "build": avatar_factories.AvatarBuildFactory(avatar__organization=org_a).pk,
        "analyst": member_factory(org_a, Role.ANALYST).pk,
        "operator": member_factory(org_a, Role.OPERATOR).pk,
        "granted_operator": granted.pk,
        "invitation": invitation.pk,
        "api_key": factories.api_key_factory(org_a).pk,
        "audit_entry": factories.AuditEntryFactory(organization=org_a).pk,
        "station": station.pk,
        "widget": scheduling_services.create_station(
            SYSTEM, org_a, name="Website", kind="web_widget"
        ).pk,
        "knowledge_entry": avatar_factories.KnowledgeEntryFactory(organization=org_a).pk,
        "knowledge_document": avatar_factories.KnowledgeDocumentFactory(organization=org_a).pk,
        "avatar": avatar_factories.with_portrait(
            avatar_factories.ready_avatar(organization=org_a)
        ).pk,
        "draft_avatar": avatar_factories.AvatarFactory(organization=org_a).pk,
        # Published by a vendor: every member of A may see it in the talent market.
        "market_avatar": avatar_factories.with_portrait(
            avatar_factories.ready_avatar(visibility="public")
        ).pk,
        "position": avatar_factories.PositionFactory(organization=org_a).pk,
        "employment": employment.pk,
        "review": avatar_factories.PerformanceReviewFactory(employment=employment).pk,
        "workload": workload.pk,
        "reservation": reservation.pk,
        "session_employment": avatar_factories.onboarded_employment(
            organization=org_a, status="active"
        ).pk,
        "statement": Statement.objects.create(
            organization=org_a, period=dt.date(2024, 3, 1), currency="CNY"
        ).pk,
        "notification": Notification.objects.create(
            organization=org_a, kind="budget_80", message="80% of the budget is spent."
        ).pk,
    }
    return {name: str(value) for name, value in ids.items()}


def _send(client: Any, method: str, url: str, row: Row, targets: dict[str, str]) -> Any:
    if isinstance(row.body, bytes):  # raw, as an upload's chunk
        return client.generic(
            method, url, row.body, content_type="application/octet-stream", headers=row.headers
        )
    return getattr(client, method.lower())(url, _fill(row.body, targets), format="json")


def _fill(value: Any, targets: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**targets)
    if isinstance(value, dict):
        return {key: _fill(item, targets) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, targets) for item in value]
    return value


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_role_gets_what_the_table_says(org_a, targets, member_factory, client_for, row, role):
    client = client_for(member_factory(org_a, role))
    method, path = row.request.split(" ")
    url = f"/api/v1/orgs/{org_a.slug}/" + _fill(path, targets)
    before = database_rows()
    response = _send(client, method, url, row, targets)
    response.getvalue()  # read to the end: a streamed file (a portrait) lets go of its file

    if role in row.allowed:
        assert response.status_code == row.success, response.content
        return
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    expected = row.denial.get(role, f"Your role ({Role(role).label}) does not allow this")
    assert expected in response.json()["detail"]
    assert database_rows() == before


def test_the_table_agrees_with_the_matrix_in_roles_py():
    for row in ROWS:
        assert row.allowed == MATRIX[row.permission], row.name
    assert {row.permission for row in ROWS} == set(Permission)


def _organization_views() -> list[type[OrganizationScoped]]:
    found, pending = [], list(OrganizationScoped.__subclasses__())
    while pending:
        view = pending.pop()
        pending.extend(view.__subclasses__())
        if view.permission_map and not view.__module__.startswith(("ironbowl.api.", "tests.")):
            found.append(view)
    return found


def test_the_table_covers_every_action_of_every_organization_endpoint():
    api = {
        (view.__name__, action) for view in _organization_views() for action in view.permission_map
    }
    table = {tuple(row.name.split(".")) for row in ROWS}
    assert api - table == set(), "add these actions to ROWS"
    assert table - api == set(), "these rows name actions the API does not have"


def test_a_person_outside_the_organization_gets_not_found_not_forbidden(
    targets, org_b, owner_b, client_for
):
    outsider = client_for(owner_b)
    before = database_rows()
    for row in ROWS:
        method, path = row.request.split(" ")
        url = "/api/v1/orgs/alpha-hospital/" + _fill(path, targets)
        response = _send(outsider, method, url, row, targets)
        assert response.status_code == 404, row.name
        assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before
