"""``{% load mediagate %}``: ``{% signed_url %}``, ``{% signed_prefix_url %}``
and ``{% signed_upload_url %}``.

    {% signed_url doc.file %}
    {% signed_url "contracts/2026.pdf" ttl="5m" attachment=True %}
    {% signed_url doc.file as url %}<a href="{{ url }}">...</a>
    {% signed_prefix_url "videos/show-1/" entry="master.m3u8" %}
    {% signed_upload_url "avatars/42.jpg" max_size=5242880 content_type="image/jpeg" %}

Links are signed for ``request.user`` (the ``request`` context processor,
or a ``user`` in the context); pass ``user=`` to sign for another.
"""

from __future__ import annotations

from typing import Any, Optional

from django import template

from .. import _conf

register = template.Library()


def _user(context: Any, user: Any) -> Any:
    if user is not None:
        return user
    request = context.get("request")
    if request is not None and hasattr(request, "user"):
        return request.user
    return context.get("user")


@register.simple_tag(takes_context=True)
def signed_url(
    context: Any,
    target: Any,
    ttl: Any = None,
    attachment: Any = None,
    inline: Optional[str] = None,
    content_type: Optional[str] = None,
    transport: Optional[str] = None,
    user: Any = None,
) -> str:
    """A signed link to one file (a ``FieldFile`` or a path below ``MEDIA_ROOT``)."""
    options = {"ttl": ttl, "attachment": attachment, "inline": inline, "content_type": content_type}
    if transport is not None:
        options["transport"] = transport
    return _conf.signed_url(target, _user(context, user), **options)


@register.simple_tag(takes_context=True)
def signed_prefix_url(
    context: Any,
    directory: Any,
    entry: Optional[str] = None,
    ttl: Any = None,
    transport: Optional[str] = None,
    user: Any = None,
) -> str:
    """A signed link to every file below ``directory``, rendered as the
    path-form URL of ``entry`` (so a playlist's relative URLs carry it)."""
    options = {"ttl": ttl}
    if transport is not None:
        options["transport"] = transport
    return _conf.signed_prefix_url(directory, _user(context, user), entry=entry, **options)


@register.simple_tag(takes_context=True)
def signed_upload_url(
    context: Any,
    target: Any,
    ttl: Any = None,
    max_size: Optional[int] = None,
    content_type: Optional[str] = None,
    sha256: Optional[str] = None,
    replace: bool = False,
    user: Any = None,
) -> str:
    """An upload URL (``PUT``) to one file (a path below ``MEDIA_ROOT``),
    for a page that uploads with ``fetch()``; never for an anonymous user."""
    options = {"ttl": ttl, "max_size": max_size, "content_type": content_type,
               "sha256": sha256, "replace": replace}
    return _conf.signed_upload_url(target, _user(context, user), **options)
