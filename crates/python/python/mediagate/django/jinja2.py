"""A Jinja2 environment for Django's Jinja2 backend with the mediagate
functions, signing with the ``MEDIAGATE`` setting's signer:

    TEMPLATES = [{
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "OPTIONS": {"environment": "mediagate.django.jinja2.environment"},
        ...
    }]
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from ..jinja import MediagateExtension
from ._conf import config


def environment(**options: Any) -> Environment:
    """A Jinja2 environment with ``MediagateExtension``, TTL and transport
    from ``MEDIAGATE``."""
    extensions = list(options.pop("extensions", []))
    extensions.append(MediagateExtension)
    env = Environment(extensions=extensions, **options)
    c = config()
    env.mediagate_ttl = c["TTL"]  # type: ignore[attr-defined]
    env.mediagate_transport = c["TRANSPORT"]  # type: ignore[attr-defined]
    env.mediagate_user_id = c["USER_ID"]  # type: ignore[attr-defined]
    return env
