"""Talk to a digital employee from the terminal, as a visitor at a station would.

    python manage.py talk lanxi-market-bureau            # the first active web widget or kiosk
    python manage.py talk lanxi-market-bureau --station "24/7 service desk · 全天候服务台"

It opens a conversation (a `session` workload) the way a widget's backend does, connects to the
running server's visitor websocket with the token, and prints each answer with its similarity
and how long the first audio took. The server (`make run`) must be running: its orchestrator
starts a conversation worker for the first question, which takes a few seconds.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from avatars.models import Employment, EmploymentStatus
from scheduling import sessions
from scheduling.models import Station, StationKind
from tenants.audit import SYSTEM
from tenants.models import Organization

READY_TIMEOUT_S = 180.0


class Command(BaseCommand):
    help = "Talk to an organization's digital employee over the visitor websocket."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("organization", help="the organization's slug")
        parser.add_argument("--station", help="the station's name (default: its first widget)")
        parser.add_argument("--language", default="zh", choices=["zh", "yue", "en"])
        parser.add_argument("--server", default=settings.INFERENCE_CONTROL_URL)

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise CommandError(f"No organization {options['organization']!r}.")
        station, employment = _desk(organization, options["station"])
        workload, ticket, _ = sessions.open_session(
            SYSTEM, station, employment, language=options["language"], video=False
        )
        self.stdout.write(f"Conversation {workload.pk} at {station.name}; Ctrl-D ends it.")
        _converse(options["server"], ticket.token, self.stdout.write)


def _desk(organization: Organization, station_name: str | None) -> tuple[Station, Employment]:
    stations = Station.objects.for_organization(organization).filter(is_active=True)
    if station_name:
        stations = stations.filter(name=station_name)
    else:
        stations = stations.filter(kind__in=[StationKind.WEB_WIDGET, StationKind.KIOSK])
    station = stations.order_by("created_at").first()
    if station is None:
        raise CommandError("No active station to talk at; name one with --station.")
    employment = (
        Employment.objects.for_organization(organization)
        .filter(status=EmploymentStatus.ACTIVE)
        .order_by("created_at")
        .first()
    )
    if employment is None:
        raise CommandError("The organization has no active digital employee.")
    return station, employment


def _converse(server: str, token: str, write: Any) -> None:
    from websockets.sync.client import connect

    url = server.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws/sessions/"
    with connect(url, open_timeout=10, max_size=None) as socket:
        socket.send(json.dumps({"type": "start", "token": token}))
        write("Waiting for a conversation worker…")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while json.loads(socket.recv(timeout=max(1.0, deadline - time.monotonic())))["type"] != (
            "ready"
        ):
            pass
        for number, line in enumerate(sys.stdin):
            question = line.strip()
            if not question:
                continue
            asked = time.monotonic()
            socket.send(json.dumps({"type": "question", "id": f"t{number}", "text": question}))
            first_audio: float | None = None
            while True:
                message = json.loads(socket.recv(timeout=120))
                if message["type"] == "answer":
                    who = "→ a colleague" if message["handed_off"] else f"{message['score']:.2f}"
                    write(f"[{who}] {message['text']}")
                elif message["type"] == "audio" and first_audio is None:
                    first_audio = time.monotonic() - asked
                elif message["type"] == "error":
                    write(f"! {message['message']}")
                    break
                elif message["type"] == "done":
                    write(f"  (first audio after {1000 * (first_audio or 0):.0f} ms)")
                    break
        socket.send(json.dumps({"type": "end"}))
