"""The app config: registers mediagate's system checks."""

from django.apps import AppConfig


class MediagateConfig(AppConfig):
    """``mediagate.django`` in ``INSTALLED_APPS``."""

    name = "mediagate.django"
    label = "mediagate"
    verbose_name = "mediagate signed media links"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
