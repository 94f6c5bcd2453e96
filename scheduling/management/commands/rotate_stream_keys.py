"""Re-encrypt live rooms' stream keys with the current STREAM_KEY_ENCRYPTION_KEY."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from scheduling import services


class Command(BaseCommand):
    help = (
        "Re-encrypt every station's stream key with the key that encrypts now "
        "(STREAM_KEY_ENCRYPTION_KEY, else the one derived from SECRET_KEY). Run it after a new "
        "key went in front of the old one, before removing the old one from the fallbacks. "
        "Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = services.rotate_stream_keys()
        self.stdout.write(
            f"Re-encrypted {outcome.rotated} stream key(s); "
            f"{outcome.current} already used the current key."
        )
        if outcome.unreadable:
            lines = [
                f"  {station.organization.slug}: station {station.pk} ({station.name})"
                for station in outcome.unreadable
            ]
            raise CommandError(
                "\n".join(
                    [
                        f"{len(outcome.unreadable)} stream key(s) could not be decrypted with any "
                        "configured key; add the key they were saved with to "
                        "STREAM_KEY_ENCRYPTION_KEY_FALLBACKS and run this again, or have each "
                        "organization enter its stream key again:",
                        *lines,
                    ]
                )
            )
