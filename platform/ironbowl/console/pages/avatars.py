"""Custom avatars: the organization's own avatars, their footage, consent and builds.

Lists the avatars and builds; creates an avatar; shows where footage and consent clips are
uploaded (the browser sends the chunks itself to the API's resumable uploads with
`static/console/upload.js`; these pages only show the widget and the uploads' state); records the
filmed person's consent; starts a build and follows it (the progress part polls with htmx while
the build runs and stops once it ended). Every change goes through the avatars domain's services,
validated by the API's own serializers, so the console and the API accept and refuse the same
input with the same words.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars import builds, catalog, consent
from avatars.api.avatars import AvatarSerializer
from avatars.api.builds import BuildStartSerializer
from avatars.api.consents import ConsentRecordSerializer
from avatars.models import (
    Avatar,
    AvatarBuild,
    AvatarVersion,
    BuildStatus,
    Consent,
    ConsentScope,
    Skill,
    Upload,
    UploadPurpose,
    UploadStatus,
)
from inference import selectors as inference
from inference.models import WorkloadState
from ironbowl.console.base import OrganizationPage
from ironbowl.console.forms import Form, submit_once, validate
from ironbowl.console.inputs import items_of
from tenants.errors import DomainError
from tenants.roles import Permission

# The purposes the console uploads here; knowledge documents and portraits have their own pages.
CONSOLE_PURPOSES = (UploadPurpose.FOOTAGE, UploadPurpose.CONSENT_CLIP)
# Each chunk the browser sends: small enough that a dropped connection loses little, and never
# over the API's limit.
CHUNK_BYTES = 4 * 1024 * 1024
# A placeholder the browser replaces with an upload's id to link to its page.
ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
LIST_LIMIT = 100
CHOICES_LIMIT = 50
ACTIVE_BUILDS = (BuildStatus.QUEUED, BuildStatus.RUNNING)

# What each stage of the build pipeline does, in the reader's words.
STAGES: dict[str, Any] = {
    "starting": gettext_lazy("Starting on a GPU worker"),
    "footage": gettext_lazy("Reading the footage"),
    "portrait": gettext_lazy("Choosing the portrait"),
    "voice": gettext_lazy("Learning the voice"),
    "bundle": gettext_lazy("Putting the avatar together"),
    "done": gettext_lazy("Done"),
}

# A build's failure code as a headline; the stored reason (the domain's words) follows it.
FAILURES: dict[str, Any] = {
    "no_video": gettext_lazy("The footage has no pictures"),
    "no_face": gettext_lazy("No face was found in the footage"),
    "too_blurry": gettext_lazy("The footage is too blurred"),
    "no_audio": gettext_lazy("The footage has no sound"),
    "no_voice": gettext_lazy("No voice was heard in the footage"),
    "footage_unreadable": gettext_lazy("The footage cannot be read"),
    "worker_lost": gettext_lazy("The GPU worker running the build was lost"),
    "internal_error": gettext_lazy("An error on our side stopped the build"),
    "consent_revoked": gettext_lazy("The filmed person revoked their consent"),
    "consent_expired": gettext_lazy("The consent expired"),
    "cancelled": gettext_lazy("The build was cancelled"),
}


def _local(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def upload_messages() -> dict[str, str]:
    """What upload.js says, in the reader's language ({name}s are filled in by the script)."""
    return {
        "choose_file": _("Choose a file first."),
        "preparing": _("Preparing the upload…"),
        "resuming": _("Asking the server how far the upload got…"),
        "sending": _("Uploading…"),
        "bytes": _("{sent} of {total}"),
        "hashing": _("Computing the file's checksum ({percent})…"),
        "retrying": _(
            "The connection was lost. Trying again in {seconds} s; what was sent is kept."
        ),
        "offline": _("No network connection. The upload continues when it is back."),
        "busy": _("The server is busy. Trying again in {seconds} s."),
        "checking": _("All bytes arrived. Checking the file…"),
        "complete": _("Upload complete: {name} passed its checks."),
        "failed": _("The upload failed: {detail}"),
        "signed_out": _(
            "Your session has ended. Sign in again in another tab, then press Upload: the "
            "upload continues where it stopped."
        ),
        "gone": _(
            "The interrupted upload is no longer on the server; starting from the beginning."
        ),
        "pending": _("{name}: {percent} uploaded, then interrupted. Choose it again to continue."),
        "pending_match": _(
            "This file's upload was interrupted at {percent}. Press Upload to continue from there."
        ),
        "error": _("Something went wrong (HTTP {status}). Try again."),
        "view": _("See the upload"),
    }


class AvatarsPage(OrganizationPage):
    """A page of the custom avatars section."""

    section = "avatars"

    def avatar(self) -> Avatar:
        avatar: Avatar = self.get_owned(Avatar, self.kwargs["pk"])
        return avatar

    def show(self, context: dict[str, Any], status: int = 200) -> HttpResponse:
        return TemplateResponse(
            self.request, self.get_template_names(), self.get_context_data(**context), status=status
        )


class AvatarList(AvatarsPage):
    """The organization's own avatars, and its latest builds."""

    template_name = "console/avatars/index.html"
    permissions: ClassVar[dict[str, Permission]] = {"get": Permission.AVATARS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        avatars = self.owned(Avatar).select_related("current_version").order_by("-created_at")
        context["avatars"] = list(avatars[:LIST_LIMIT])
        context["more_avatars"] = avatars.count() > LIST_LIMIT
        context["builds"] = list(
            self.owned(AvatarBuild).select_related("avatar").order_by("-created_at")[:20]
        )
        return context


class AvatarCreate(AvatarsPage):
    """A new draft avatar: its names, languages, skills and persona; a build makes it ready."""

    template_name = "console/avatars/avatar_form.html"
    permissions: ClassVar[dict[str, Permission]] = {
        "get": Permission.AVATARS_MANAGE,
        "post": Permission.AVATARS_MANAGE,
    }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", Form.of(context["draft"]))
        context["skills"] = Skill.choices
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, self._create)

    def _create(self) -> HttpResponse:
        posted = self.request.POST
        form = Form.of(posted)
        data = {
            "name_zh": posted.get("name_zh", ""),
            "name_en": posted.get("name_en", ""),
            "languages": items_of(posted.get("languages", "")),
            "skills": posted.getlist("skills"),
            "persona": posted.get("persona", ""),
            "description": posted.get("description", ""),
        }
        valid = validate(
            AvatarSerializer, form, data, organization=self.organization, request=self.request
        )
        if valid is not None:
            try:
                avatar = catalog.create_avatar(self.actor, self.organization, **valid)
            except DomainError as error:
                form.fail(error)
            else:
                messages.success(self.request, _("%(avatar)s was created.") % {"avatar": avatar})
                return redirect(self.url("console:avatar-detail", avatar.pk))
        return self.show({"form": form}, status=400)


class AvatarDetail(AvatarsPage):
    """One avatar: its versions, the consents given for it and its builds."""

    template_name = "console/avatars/detail.html"
    permissions: ClassVar[dict[str, Permission]] = {"get": Permission.AVATARS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        avatar = self.avatar()
        context["avatar"] = avatar
        context["skill_labels"] = [Skill(s).label for s in avatar.skills if s in Skill.values]
        context["versions"] = list(
            self.owned(AvatarVersion).filter(avatar=avatar).order_by("-number")
        )
        context["consents"] = list(
            self.owned(Consent)
            .filter(avatar=avatar)
            .select_related("clip")
            .prefetch_related("scope_organizations")
            .order_by("-created_at")
        )
        context["builds"] = list(
            self.owned(AvatarBuild).filter(avatar=avatar).order_by("-created_at")[:20]
        )
        context["active_build"] = builds.active_build_of(avatar)
        return context


class UploadWidget(AvatarsPage):
    """A page that shows the upload widget (upload.js) for some purposes."""

    purposes: ClassVar[tuple[str, ...]] = CONSOLE_PURPOSES

    def upload_config(self, purpose: str, select: str = "") -> dict[str, Any]:
        """What upload.js needs: the API's uploads endpoint, the chunk size, the allowed types
        per purpose, where an upload's page is, and its words."""
        return {
            "api": reverse("upload-list", kwargs={"org": self.organization.slug}),
            "purpose": purpose,
            "chunkBytes": min(CHUNK_BYTES, settings.UPLOAD_CHUNK_MAX_BYTES),
            "csrfCookie": settings.CSRF_COOKIE_NAME,
            "types": {p: settings.UPLOAD_LIMITS[p]["types"] for p in self.purposes},
            "detailUrl": self.url("console:upload-detail", ID_PLACEHOLDER),
            "placeholder": ID_PLACEHOLDER,
            "select": select,
            "messages": upload_messages(),
        }

    def accept(self, purposes: tuple[str, ...]) -> str:
        """The file chooser's filter: every allowed type and extension of those purposes."""
        kinds: set[str] = set()
        for purpose in purposes:
            for content_type, extensions in settings.UPLOAD_LIMITS[purpose]["types"].items():
                kinds.add(content_type)
                kinds.update(extensions)
        return ",".join(sorted(kinds))


class UploadList(UploadWidget):
    """Footage and consent clips: the upload widget and the uploads so far, with their state."""

    template_name = "console/avatars/uploads.html"
    permissions: ClassVar[dict[str, Permission]] = {"get": Permission.UPLOADS_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        purpose = self.request.GET.get("purpose", UploadPurpose.FOOTAGE)
        if purpose not in self.purposes:
            purpose = UploadPurpose.FOOTAGE
        context["purpose"] = purpose
        context["purposes"] = [(p.value, p.label) for p in CONSOLE_PURPOSES]
        context["upload_config"] = self.upload_config(purpose)
        context["accept"] = self.accept(self.purposes)
        context["uploads"] = list(
            self.owned(Upload)
            .filter(purpose__in=self.purposes)
            .order_by("-created_at")[:LIST_LIMIT]
        )
        return context


class UploadDetail(AvatarsPage):
    """One upload: how far it got, and what its checks measured or why it failed."""

    template_name = "console/avatars/upload_detail.html"
    permissions: ClassVar[dict[str, Permission]] = {"get": Permission.UPLOADS_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        upload: Upload = self.get_owned(Upload, self.kwargs["pk"], purpose__in=CONSOLE_PURPOSES)
        context["upload"] = upload
        context["percent"] = upload.received * 100 // upload.size if upload.size else 0
        info = upload.media_info or {}
        context["info"] = info
        context["problems"] = info.get("problems") or []
        return context


class ConsentCreate(UploadWidget):
    """The filmed person's consent for an avatar: who, their statement, the recorded clip (the
    signed statement on video or audio), who may use the likeness, until when."""

    template_name = "console/avatars/consent_form.html"
    purposes: ClassVar[tuple[str, ...]] = (UploadPurpose.CONSENT_CLIP,)
    permissions: ClassVar[dict[str, Permission]] = {
        "get": Permission.AVATARS_MANAGE,
        "post": Permission.AVATARS_MANAGE,
    }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["avatar"] = avatar = kwargs.get("avatar") or self.avatar()
        context.setdefault("form", Form.of(context["draft"], scope=ConsentScope.OWNER))
        clips = (
            self.owned(Upload)
            .filter(purpose=UploadPurpose.CONSENT_CLIP, status=UploadStatus.COMPLETE)
            .order_by("-created_at")[:CHOICES_LIMIT]
        )
        context["clips"] = [(c.pk, f"{c.filename} · {_local(c.created_at)}") for c in clips]
        context["scopes"] = ConsentScope.choices
        context["avatar_name"] = str(avatar)
        if self.may(Permission.UPLOADS_MANAGE):
            context["upload_config"] = self.upload_config(
                UploadPurpose.CONSENT_CLIP, select="field-clip"
            )
            context["accept"] = self.accept(self.purposes)
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.avatar()
        return submit_once(request, lambda: self._record(avatar))

    def _record(self, avatar: Avatar) -> HttpResponse:
        posted = self.request.POST
        form = Form.of(posted)
        data: dict[str, Any] = {
            "avatar": str(avatar.pk),
            "subject_name": posted.get("subject_name", ""),
            "statement": posted.get("statement", ""),
            "scope": posted.get("scope", ""),
        }
        # Left empty, a choice or a date is missing ("required"), not malformed.
        for name in ("clip", "expires_at"):
            if posted.get(name, "").strip():
                data[name] = posted[name].strip()
        listed = items_of(posted.get("scope_organizations", ""))
        if listed:
            data["scope_organizations"] = listed
        if not data["scope"]:
            data.pop("scope")
        valid = validate(
            ConsentRecordSerializer,
            form,
            data,
            organization=self.organization,
            request=self.request,
        )
        if valid is not None:
            try:
                consent.record_consent(self.actor, self.organization, **valid)
            except DomainError as error:
                form.fail(error)
            else:
                messages.success(self.request, _("The consent was recorded."))
                return redirect(self.url("console:avatar-detail", avatar.pk))
        return self.show({"form": form, "avatar": avatar}, status=400)


class BuildStart(AvatarsPage):
    """Start a build of a new version of the avatar: complete footage under a valid consent."""

    template_name = "console/avatars/build_form.html"
    permissions: ClassVar[dict[str, Permission]] = {
        "get": Permission.AVATARS_MANAGE,
        "post": Permission.AVATARS_MANAGE,
    }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["avatar"] = avatar = kwargs.get("avatar") or self.avatar()
        footage = (
            self.owned(Upload)
            .filter(purpose=UploadPurpose.FOOTAGE, status=UploadStatus.COMPLETE)
            .order_by("-created_at")[:CHOICES_LIMIT]
        )
        context["footage_choices"] = [
            (f.pk, f"{f.filename} · {_local(f.created_at)}") for f in footage
        ]
        consents = (
            self.owned(Consent)
            .filter(avatar=avatar, revoked_at__isnull=True, expires_at__gt=timezone.now())
            .order_by("-created_at")[:CHOICES_LIMIT]
        )
        context["consent_choices"] = [
            (
                c.pk,
                _("%(subject)s · %(scope)s · until %(date)s")
                % {
                    "subject": c.subject_name,
                    "scope": ConsentScope(c.scope).label,
                    "date": _local(c.expires_at),
                },
            )
            for c in consents
        ]
        context["active_build"] = builds.active_build_of(avatar)
        initial: dict[str, Any] = {}
        if context["footage_choices"]:
            initial["footage"] = str(context["footage_choices"][0][0])
        if context["consent_choices"]:
            initial["consent"] = str(context["consent_choices"][0][0])
        context.setdefault("form", Form.of(context["draft"], **initial))
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.avatar()
        return submit_once(request, lambda: self._start(avatar))

    def _start(self, avatar: Avatar) -> HttpResponse:
        posted = self.request.POST
        form = Form.of(posted)
        data = {"avatar": str(avatar.pk)}
        for name in ("footage", "consent"):
            if posted.get(name, "").strip():
                data[name] = posted[name].strip()
        valid = validate(
            BuildStartSerializer, form, data, organization=self.organization, request=self.request
        )
        if valid is not None:
            try:
                build = builds.start_build(
                    self.actor,
                    self.organization,
                    avatar=valid["avatar"],
                    footage=valid.get("footage"),
                    consent=valid.get("consent"),
                )
            except DomainError as error:
                form.fail(error)
            else:
                return redirect(self.url("console:build-detail", build.pk))
        return self.show({"form": form, "avatar": avatar}, status=400)


class BuildView(AvatarsPage):
    """What the build pages share: the build, its stage and progress, why it waits or failed."""

    permissions: ClassVar[dict[str, Permission]] = {"get": Permission.AVATARS_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        build: AvatarBuild = self.get_owned(AvatarBuild, self.kwargs["pk"])
        context["build"] = build
        context["avatar"] = self.get_owned(Avatar, build.avatar_id)
        context["running"] = build.status in ACTIVE_BUILDS
        context["stage"] = STAGES.get(build.stage, build.stage)
        context["failure"] = (
            FAILURES.get(build.failure_code, "")
            if build.status in (BuildStatus.FAILED, BuildStatus.CANCELLED)
            else ""
        )
        context["waiting"] = self._waiting(build)
        context["cancel_form"] = Form()
        return context

    def _waiting(self, build: AvatarBuild) -> str:
        """Why a queued build waits, as inference tells it (its workload's reason)."""
        if build.status != BuildStatus.QUEUED or build.workload_id is None:
            return ""
        workload = inference.workloads_of(self.organization).filter(pk=build.workload_id).first()
        if workload is None or workload.state not in (WorkloadState.QUEUED, WorkloadState.ADMITTED):
            return ""
        return workload.reason


class BuildDetail(BuildView):
    """A build's page; its progress part refreshes itself while the build runs."""

    template_name = "console/avatars/build_detail.html"


class BuildProgress(BuildView):
    """The progress part alone, for htmx's polling."""

    template_name = "console/avatars/build_progress.html"


class BuildCancel(BuildView):
    """Cancel a queued or running build; the avatar stays as it was."""

    permissions: ClassVar[dict[str, Permission]] = {"post": Permission.AVATARS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        build: AvatarBuild = self.get_owned(AvatarBuild, self.kwargs["pk"])
        return submit_once(request, lambda: self._cancel(build))

    def _cancel(self, build: AvatarBuild) -> HttpResponse:
        try:
            builds.cancel_build(self.actor, build)
        except DomainError as error:
            messages.error(self.request, str(error.detail))
        else:
            messages.success(self.request, _("The build was cancelled."))
        return redirect(self.url("console:build-detail", build.pk))


urlpatterns = [
    path("avatars/", AvatarList.as_view(), name="avatars"),
    path("avatars/new/", AvatarCreate.as_view(), name="avatar-create"),
    path("avatars/uploads/", UploadList.as_view(), name="upload-list"),
    path("avatars/uploads/<uuid:pk>/", UploadDetail.as_view(), name="upload-detail"),
    path("avatars/builds/<uuid:pk>/", BuildDetail.as_view(), name="build-detail"),
    path("avatars/builds/<uuid:pk>/progress/", BuildProgress.as_view(), name="build-progress"),
    path("avatars/builds/<uuid:pk>/cancel/", BuildCancel.as_view(), name="build-cancel"),
    path("avatars/<uuid:pk>/", AvatarDetail.as_view(), name="avatar-detail"),
    path("avatars/<uuid:pk>/consent/", ConsentCreate.as_view(), name="consent-create"),
    path("avatars/<uuid:pk>/build/", BuildStart.as_view(), name="build-start"),
]
