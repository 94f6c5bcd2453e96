"""Error pages: HTML for the console's pages, the API's JSON shape everywhere else."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ironbowl.api.errors import json_not_found, json_server_error

PREFIX = "/console/"


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(PREFIX):
        return render(request, "console/404.html", status=404)
    return json_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(PREFIX):
        return render(request, "console/500.html", status=500)
    return json_server_error(request)
