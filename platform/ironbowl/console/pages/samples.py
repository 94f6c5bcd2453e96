"""The talent market preview's rendered sample: the avatar saying hello, rendered for the viewing
organization.

The preview shows the newest sample of the avatar's current version whose video is there (played
from this organization's own URL), else the render in progress (its part polls every 2 s), else
why the last one failed, with a "Render a sample" button for members who may submit GPU work
(`avatars.samples.render_sample`: one at a time per organization and version). Rights: watching
needs what the preview needs; rendering needs what the workloads API needs to submit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from avatars import samples
from avatars.models import Avatar
from inference.models import FINAL_STATES, Workload, WorkloadState
from ironbowl.console.forms import Form, submit_once
from ironbowl.console.pages.market import MarketPage
from tenants.errors import DomainError
from tenants.models import Organization
from tenants.roles import Permission

# Why a queued sample waits, by the reason code admission gives (its own sentence otherwise).
WAITING: dict[str, Promise] = {
    "queued": gettext_lazy("Queued: waiting for a GPU worker."),
    "quota": gettext_lazy("Waiting for a GPU slot within your plan's limit."),
    "gpu_hours": gettext_lazy("Waiting: this month's GPU hours are used up."),
    "budget_exhausted": gettext_lazy(
        "Waiting: this month's budget is used up and it stops new work. It starts when the "
        "budget is raised or the month ends."
    ),
    "pool_inactive": gettext_lazy(
        "Waiting: no GPU pool renders videos at the moment; ask the platform's operators."
    ),
    "capacity": gettext_lazy("Waiting for free GPU capacity."),
    "capacity_freeing": gettext_lazy("Waiting for free GPU capacity."),
}
# Why a sample render ended without a video, by its reason code (the worker's words follow).
ENDED: dict[str, Promise] = {
    "pipeline_failed": gettext_lazy("The render failed."),
    "worker_lost": gettext_lazy("The GPU worker rendering it was lost too often."),
    "cancelled": gettext_lazy("The render was cancelled."),
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Sample:
    """What the sample part shows."""

    workload: Workload | None
    # none, waiting, running, ready (its video plays), ended (failed, cancelled) or missing
    # (succeeded, but its video is no longer stored here)
    state: str
    label: str
    percent: int
    note: str
    status_url: str
    video_url: str
    render_url: str
    may_render: bool
    form: Form

    @property
    def polling(self) -> bool:
        return self.state in ("waiting", "running")


def sample_of(
    organization: Organization, avatar: Avatar, workload: Workload | None, *, may_render: bool
) -> Sample:
    """The sample part of the avatar's preview for this workload (None: no sample yet)."""

    def url(name: str, *args: Any) -> str:
        return reverse(f"console:{name}", args=[organization.slug, avatar.pk, *args])

    state, note, video_url, status_url = "none", "", "", ""
    if workload is not None:
        status_url = url("sample-status", workload.pk)
        if workload.state not in FINAL_STATES:
            state = "running" if workload.state == WorkloadState.RUNNING else "waiting"
            note = str(WAITING.get(workload.reason_code, workload.reason))
        elif samples.sample_video(workload) is not None:
            state, video_url = "ready", url("sample-video", workload.pk)
        elif workload.state == WorkloadState.SUCCEEDED:
            state = "missing"
        else:
            state = "ended"
            known = ENDED.get(workload.reason_code)
            note = " ".join(str(part) for part in (known, workload.reason) if part)
    return Sample(
        workload=workload,
        state=state,
        label=workload.get_state_display() if workload is not None else "",
        percent=round(workload.progress * 100) if workload is not None else 0,
        note=note,
        status_url=status_url,
        video_url=video_url,
        render_url=url("sample-render"),
        may_render=may_render
        and avatar.current_version_id is not None
        and state not in ("waiting", "running", "ready"),
        form=Form(),
    )


def preview_sample(context: Any) -> Sample:
    """The sample part of the preview page being rendered (its context has the organization, the
    avatar and the member's rights)."""
    organization, avatar = context["organization"], context["avatar"]
    return sample_of(
        organization,
        avatar,
        samples.sample_to_show(organization, avatar),
        may_render=bool(context["can"]["workloads_manage"]),
    )


class SamplePage(MarketPage):
    """A sample of an avatar the member may preview; another avatar's sample, another
    organization's workload or any other workload answers the same 404."""

    def sample_workload(self, avatar: Avatar, pk: Any) -> Workload:
        workload = samples.samples_of(self.organization, avatar).filter(pk=pk).first()
        if workload is None:
            raise Http404(_("No such sample."))
        return workload


class SampleRender(SamplePage):
    """Render a sample for this organization (once: a double submit, or a render already queued
    or running, queues nothing more); back to the preview, where it shows its progress."""

    permissions = {"post": Permission.WORKLOADS_MANAGE}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.visible_avatar(kwargs["pk"])
        return submit_once(request, lambda: self._render(avatar))

    def _render(self, avatar: Avatar) -> HttpResponse:
        try:
            _workload, created = samples.render_sample(self.actor, self.organization, avatar)
        except DomainError as error:
            messages.error(self.request, str(error.detail))
        else:
            if created:
                messages.success(self.request, _("The sample is queued for rendering."))
        return redirect(f"{self.url('console:market-avatar', avatar.pk)}#sample")


class SampleStatus(SamplePage):
    """The sample part alone, for htmx's polling while it renders."""

    template_name = "console/market/sample.html"
    permissions = {"get": Permission.MARKET_VIEW}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        avatar = self.visible_avatar(kwargs["pk"])
        workload = self.sample_workload(avatar, kwargs["workload"])
        context.update(
            avatar=avatar,
            sample=sample_of(
                self.organization,
                avatar,
                workload,
                may_render=self.may(Permission.WORKLOADS_MANAGE),
            ),
        )
        return context


class SampleVideo(SamplePage):
    """The sample's MP4, for this organization's members (byte ranges, as tablets' players ask)."""

    permissions = {"get": Permission.MARKET_VIEW}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        avatar = self.visible_avatar(kwargs["pk"])
        video = samples.sample_video(self.sample_workload(avatar, kwargs["workload"]))
        if video is None:
            raise Http404(_("This sample's video is not stored."))
        return video_response(video, request.headers.get("Range", ""))


def video_response(video: Path, asked: str) -> HttpResponse:
    """The MP4 whole, or the one byte range asked for (206); a range past its end is 416.
    A sample is a few seconds at 256×256 (a few hundred kilobytes): read whole, not streamed."""
    data = video.read_bytes()
    size = len(data)
    match = _RANGE.match(asked.strip())
    if not match or match.groups() == ("", ""):
        response = HttpResponse(data, content_type="video/mp4")
    else:
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        else:  # the last N bytes
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = HttpResponse(data[start : end + 1], status=206, content_type="video/mp4")
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private"  # this organization's members', not a shared cache's
    return response


urlpatterns = [
    path("market/avatars/<uuid:pk>/sample/", SampleRender.as_view(), name="sample-render"),
    path(
        "market/avatars/<uuid:pk>/sample/<uuid:workload>/",
        SampleStatus.as_view(),
        name="sample-status",
    ),
    path(
        "market/avatars/<uuid:pk>/sample/<uuid:workload>/video/",
        SampleVideo.as_view(),
        name="sample-video",
    ),
]
