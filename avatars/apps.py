from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AvatarsConfig(AppConfig):
    name = "avatars"
    verbose_name = _("Digital employees")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A build follows its workload; inference announces changes without importing avatars.
        from avatars import builds
        from inference.signals import workload_changed

        workload_changed.connect(builds.on_workload_changed, dispatch_uid="avatars.builds")
