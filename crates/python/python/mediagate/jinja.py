"""A Jinja2 extension adding ``signed_url(...)`` and ``signed_prefix_url(...)``
to templates (Flask, FastAPI, Django's Jinja2 backend).

    from jinja2 import Environment
    from mediagate import Signer
    from mediagate.jinja import MediagateExtension

    env = Environment(extensions=[MediagateExtension])
    env.mediagate_signer = Signer.from_keys_file("keys.toml", base_url="/media")
    env.from_string('<a href="{{ signed_url("docs/a.pdf", user=uid) }}">')

Settings on the environment: ``mediagate_signer`` (required, unless Django
is configured: then the ``MEDIAGATE`` setting's signer), ``mediagate_ttl``
(default ``"10m"``), ``mediagate_transport`` (``"query"``), and
``mediagate_user``: a function of the template context giving the user when
a call passes no ``user=`` (default: the context's ``user``, else
``request.user``), and ``mediagate_user_id``: the attribute of a user object
links are signed for (default ``"pk"``; or a function of the user).
"""

from __future__ import annotations

from typing import Any, Optional

from jinja2 import pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

from ._core import Signer
from ._errors import SignError
from ._links import sign_prefix_url, sign_url, user_id

__all__ = ["MediagateExtension"]


def _context_user(context: Context) -> Any:
    user = context.get("user")
    if user is None:
        request = context.get("request")
        user = getattr(request, "user", None)
    return user


class MediagateExtension(Extension):
    """Adds the two link functions as template globals."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.extend(
            mediagate_signer=None,
            mediagate_ttl="10m",
            mediagate_transport="query",
            mediagate_user=_context_user,
            mediagate_user_id="pk",
        )
        environment.globals["signed_url"] = _signed_url
        environment.globals["signed_prefix_url"] = _signed_prefix_url


def _signer(env: Any) -> Signer:
    if env.mediagate_signer is not None:
        return env.mediagate_signer
    try:
        from django.conf import settings

        if settings.configured:
            from .django import signer

            return signer()
    except ImportError:
        pass
    raise SignError("set env.mediagate_signer to a mediagate.Signer", "no_signer")


def _user(context: Context, user: Any) -> str:
    env: Any = context.environment
    if user is None:
        user = env.mediagate_user(context)
    return user_id(user, env.mediagate_user_id)


@pass_context
def _signed_url(
    context: Context,
    target: Any,
    user: Any = None,
    ttl: Any = None,
    attachment: Any = None,
    inline: Optional[str] = None,
    content_type: Optional[str] = None,
    transport: Optional[str] = None,
) -> str:
    env: Any = context.environment
    return sign_url(
        _signer(env),
        target,
        _user(context, user),
        transport=transport or env.mediagate_transport,
        attachment=attachment,
        inline=inline,
        content_type=content_type,
        ttl=ttl if ttl is not None else env.mediagate_ttl,
    )


@pass_context
def _signed_prefix_url(
    context: Context,
    directory: Any,
    entry: Optional[str] = None,
    user: Any = None,
    ttl: Any = None,
    transport: Optional[str] = None,
) -> str:
    env: Any = context.environment
    return sign_prefix_url(
        _signer(env),
        directory,
        _user(context, user),
        entry=entry,
        transport=transport or "path",
        ttl=ttl if ttl is not None else env.mediagate_ttl,
    )
