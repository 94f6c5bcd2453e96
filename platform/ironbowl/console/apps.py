from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    name = "ironbowl.console"
    label = "console"
    verbose_name = _("Console")

    def ready(self) -> None:
        from ironbowl.console import receivers  # noqa: F401 - connects the board's receivers
