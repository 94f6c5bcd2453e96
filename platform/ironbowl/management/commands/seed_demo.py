"""Load the demo world: organizations, members, stations, avatars and hires (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand

from ironbowl.demo import demo_logins, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo organizations, members in every role, stations, the vendor's published "
        "avatars, two hires and the knowledge they answer from."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        created = seed_demo()
        if created:
            self.stdout.write(f"Created: {', '.join(created)}")
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        self.stdout.write("\n".join(["Demo logins:", *demo_logins()]))
