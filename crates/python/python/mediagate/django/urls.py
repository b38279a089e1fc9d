"""``media_urlpatterns()``: the development view under ``BASE_URL``'s path.

    # urls.py
    from mediagate.django.urls import media_urlpatterns
    urlpatterns = [...] + media_urlpatterns()

Like ``django.conf.urls.static.static``, it adds nothing unless ``DEBUG``
is on (pass ``debug_only=False`` to add it anyway, as tests do).
"""

from __future__ import annotations

import re
from typing import Any, List

from django.conf import settings
from django.urls import re_path

from ._conf import config, mount
from .views import serve


def media_urlpatterns(debug_only: bool = True) -> List[Any]:
    """The URL patterns of the development view, or none."""
    if debug_only and not settings.DEBUG:
        return []
    if "://" in config()["BASE_URL"]:
        return []  # media on another host: that host runs `mediagate serve`
    prefix = re.escape(mount().lstrip("/"))
    return [re_path(rf"^{prefix}/" if prefix else r"^", serve, name="mediagate-media")]
