"""Signing in and out, and choosing an organization."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.http import require_POST

from ironbowl.console.base import SignedInPage
from ironbowl.console.forms import Form
from tenants import selectors

# Failed sign-ins allowed per address and email before a pause (guessing passwords is slow).
MAX_FAILURES = 10
FAILURE_WINDOW_S = 15 * 60


def _failures_key(request: HttpRequest, email: str) -> str:
    return f"console:sign-in-failures:{request.META.get('REMOTE_ADDR', '')}:{email}"


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("console:home")


class SignIn(View):
    template_name = "console/sign_in.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect(_next_url(request))
        return self._show(request, Form.of(None, next=request.GET.get("next", "")))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = Form.of(request.POST)
        email = str(form.value("email")).strip().lower()
        password = request.POST.get("password", "")
        if not email:
            form.add("email", _("Enter your email address."))
        if not password:
            form.add("password", _("Enter your password."))
        if not form.ok:
            return self._show(request, form, status=400)
        key = _failures_key(request, email)
        if (cache.get(key) or 0) >= MAX_FAILURES:
            form.add(None, _("Too many failed attempts. Wait 15 minutes, then try again."))
            return self._show(request, form, status=429)
        user = authenticate(request, username=email, password=password)
        if user is None:
            cache.add(key, 0, timeout=FAILURE_WINDOW_S)
            cache.incr(key)
            form.add(None, _("The email address or password is wrong."))
            return self._show(request, form, status=400)
        cache.delete(key)
        login(request, user)
        return redirect(_next_url(request))

    def _show(self, request: HttpRequest, form: Form, status: int = 200) -> HttpResponse:
        return render(request, self.template_name, {"form": form}, status=status)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("console:sign-in")


class Home(SignedInPage):
    """The organizations one belongs to; straight to the last one used, or the only one."""

    template_name = "console/home.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        memberships = list(selectors.memberships_of_user(self.user).select_related("organization"))
        slugs = [m.organization.slug for m in memberships]
        last = request.session.get("console.organization")
        if "choose" not in request.GET:
            if last in slugs:
                return redirect("console:dashboard", org=last)
            if len(slugs) == 1:
                return redirect("console:dashboard", org=slugs[0])
        return super().get(request, *args, **kwargs)
