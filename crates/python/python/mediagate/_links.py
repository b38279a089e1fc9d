"""What the Django tag, the Django storage and the Jinja2 extension share:
a file or path into a signed path, a user into a user id, and a link into
a URL in the chosen transport."""

from __future__ import annotations

import posixpath
from typing import Any, Callable, Optional, Union

from ._core import Signer
from ._errors import SignError

__all__ = ["TRANSPORTS", "file_path", "user_id", "sign_url", "sign_prefix_url"]

TRANSPORTS = ("query", "path")
"""How a rendered link carries its token: ``?mg_token=`` or ``/_mg/<token>/``."""


def file_path(target: Any) -> str:
    """The signed path of ``target``: a Django ``FieldFile``/``File`` (its
    storage name, relative to the media root) or a string. Storage names
    are relative (``docs/a.pdf``) and become ``/docs/a.pdf``."""
    name = getattr(target, "name", target)
    if not isinstance(name, str) or not name:
        raise SignError("no file to sign a link for (an empty file field?)", "bad_path")
    return name if name.startswith("/") else "/" + name


def user_id(user: Any, attribute: Union[str, Callable[[Any], Any]] = "pk") -> str:
    """The id a link is signed for: a string or int as given; a user object
    by ``attribute`` (an attribute name, or a callable taking the user). An
    anonymous or missing user is a ``SignError`` with code ``no_user``:
    a link for nobody in particular is never minted by accident."""
    if isinstance(user, str):
        value: Any = user
    elif isinstance(user, int) and not isinstance(user, bool):
        value = user
    elif user is None or not getattr(user, "is_authenticated", True):
        raise SignError(
            "no signed-in user to sign the link for (an anonymous request, or no "
            "request at all); sign in, pass user=, or set MEDIAGATE['ANONYMOUS_URL']",
            "no_user",
        )
    elif callable(attribute):
        value = attribute(user)
    else:
        value = getattr(user, attribute, None)
    if value is None or value == "":
        raise SignError("the user has no id to sign a link for", "no_user")
    return str(value)


def _render(link: Any, transport: str, file: Optional[str], base: Optional[str]) -> str:
    if transport == "query":
        return link.url(base) if file is None else link.url_for(file, base)
    if transport == "path":
        return link.path_form(base) if file is None else link.path_form_for(file, base)
    raise SignError(f"transport must be one of {', '.join(TRANSPORTS)}", "bad_transport")


def sign_url(
    signer: Signer,
    target: Any,
    user: str,
    *,
    transport: str = "query",
    attachment: Union[bool, str, None] = None,
    base: Optional[str] = None,
    **claims: Any,
) -> str:
    """A URL for ``user`` to exactly the file ``target``, under ``base``
    (default: the signer's ``base_url``). ``attachment=True`` names the
    download after the file."""
    path = file_path(target)
    if attachment is True:
        attachment = posixpath.basename(path)
    elif attachment is False:
        attachment = None
    if transport == "query":
        return signer.url(user, path, base, attachment=attachment, **claims)
    return _render(signer.link(user, path, attachment=attachment, **claims), transport, None, base)


def sign_prefix_url(
    signer: Signer,
    directory: Any,
    user: str,
    *,
    entry: Optional[str] = None,
    transport: str = "path",
    base: Optional[str] = None,
    **claims: Any,
) -> str:
    """A URL for ``user`` under a prefix link to every file below
    ``directory`` (which ends in ``/``, else ``SignError`` with code
    ``prefix_without_slash``): the URL of ``entry`` (a file name relative to the
    directory, such as ``master.m3u8``), or of the directory itself."""
    path = file_path(directory)
    link = signer.prefix(user, path, **claims)
    file = None if entry is None else path + entry.lstrip("/")
    return _render(link, transport, file, base)


def sign_upload_url(
    signer: Signer,
    target: Any,
    user: str,
    *,
    base: Optional[str] = None,
    **claims: Any,
) -> str:
    """An upload URL (``PUT``, query form) for ``user`` to exactly the file
    ``target``, under ``base`` (default: the signer's ``base_url``);
    ``claims``: ``ttl``, ``max_size``, ``content_type``, ``sha256``,
    ``replace``, ``client_ip``."""
    return signer.upload(user, file_path(target), **claims).url(base)
