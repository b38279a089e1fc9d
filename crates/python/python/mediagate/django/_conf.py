"""The ``MEDIAGATE`` setting, its defaults, and the signer and verifier
made from it (once, and again when tests change the setting)."""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .._core import Signer, Verifier
from .._errors import SignError
from .._links import sign_prefix_url, sign_upload_url, sign_url, user_id

DEFAULTS: Dict[str, Any] = {
    # The keys file `mediagate keygen` writes; when None, the keys come
    # from the environment variable KEYS_ENV (id:secret[,id:secret...]).
    "KEYS_FILE": None,
    "KEYS_ENV": "MEDIAGATE_KEYS",
    # Accept a keys file its group may read (0640), as mounted secrets are.
    "GROUP_READABLE": False,
    # Where `mediagate serve` serves MEDIA_ROOT: a path on this site
    # ("/media") or a media host ("https://media.example.com/media").
    # Default: MEDIA_URL.
    "BASE_URL": None,
    # The lifetime of links that do not say, and the longest allowed.
    "TTL": "10m",
    "MAX_TTL": "7d",
    # How links carry the token: "query" (?mg_token=) or "path" (/_mg/<token>/).
    "TRANSPORT": "query",
    # Which attribute of request.user links are signed for (or a callable).
    "USER_ID": "pk",
    # What {% signed_url %} and storage.url() give an anonymous user: None
    # raises mediagate.SignError (code "no_user"); a string is returned as is.
    "ANONYMOUS_URL": None,
}


@functools.lru_cache(maxsize=1)
def config() -> Dict[str, Any]:
    """The ``MEDIAGATE`` setting over its defaults (read once per change of
    the setting: every link a template renders asks for it)."""
    merged = dict(DEFAULTS)
    merged.update(getattr(settings, "MEDIAGATE", {}) or {})
    if merged["BASE_URL"] is None:
        merged["BASE_URL"] = (getattr(settings, "MEDIA_URL", None) or "/media/").rstrip("/")
    return merged


def mount() -> str:
    """The path part of ``BASE_URL`` (``/media``), where the server's mount is."""
    return urlsplit(config()["BASE_URL"]).path.rstrip("/")


@functools.lru_cache(maxsize=1)
def signer() -> Signer:
    """The signer the settings describe, made once."""
    c = config()
    options = dict(base_url=c["BASE_URL"], default_ttl=c["TTL"], max_ttl=c["MAX_TTL"])
    if c["KEYS_FILE"]:
        return Signer.from_keys_file(
            str(c["KEYS_FILE"]), group_readable=bool(c["GROUP_READABLE"]), **options
        )
    return Signer.from_env(c["KEYS_ENV"], **options)


@functools.lru_cache(maxsize=1)
def verifier() -> Verifier:
    """The verifier the settings describe (for the development view)."""
    c = config()
    if c["KEYS_FILE"]:
        return Verifier.from_keys_file(
            str(c["KEYS_FILE"]), group_readable=bool(c["GROUP_READABLE"]), max_ttl=c["MAX_TTL"]
        )
    return Verifier.from_env(c["KEYS_ENV"], max_ttl=c["MAX_TTL"])


@receiver(setting_changed)
def _forget(setting: str, **_: Any) -> None:
    if setting in ("MEDIAGATE", "MEDIA_URL"):
        config.cache_clear()
        signer.cache_clear()
        verifier.cache_clear()


def _user(user: Any) -> Optional[str]:
    """The user id to sign for, or None for the anonymous fallback."""
    c = config()
    anonymous = user is None or not isinstance(user, (str, int)) and not getattr(
        user, "is_authenticated", True
    )
    if anonymous and c["ANONYMOUS_URL"] is not None:
        return None
    return user_id(user, c["USER_ID"])


def signed_url(target: Any, user: Any, **options: Any) -> str:
    """A link for ``user`` (a user object, or an id) to the file ``target``
    (a ``FieldFile`` or a path below ``MEDIA_ROOT``), rendered under
    ``BASE_URL``. ``options``: ``ttl``, ``attachment`` (True, or a
    filename), ``inline``, ``content_type``, ``client_ip``, ``transport``."""
    uid = _user(user)
    if uid is None:
        return config()["ANONYMOUS_URL"]
    options.setdefault("transport", config()["TRANSPORT"])
    return sign_url(signer(), target, uid, **options)


def signed_upload_url(target: Any, user: Any, **options: Any) -> str:
    """An upload link (``PUT``) for ``user`` to the file ``target`` (a path
    below ``MEDIA_ROOT``), rendered under ``BASE_URL``. ``options``: ``ttl``,
    ``max_size`` (bytes), ``content_type``, ``sha256``, ``replace``,
    ``client_ip``. An anonymous user gets ``SignError(no_user)``: an upload
    is never granted to nobody, whatever ``ANONYMOUS_URL`` says."""
    uid = _user(user)
    if uid is None:
        raise SignError("an upload link is never signed for an anonymous user", "no_user")
    return sign_upload_url(signer(), target, uid, **options)


def signed_prefix_url(directory: Any, user: Any, entry: Optional[str] = None, **options: Any) -> str:
    """A prefix link for ``user`` to every file below ``directory``,
    rendered as the URL of ``entry`` (``master.m3u8``) in the path form,
    so that the playlist's relative URLs carry the token."""
    uid = _user(user)
    if uid is None:
        return config()["ANONYMOUS_URL"]
    options.setdefault("transport", "path")
    return sign_prefix_url(signer(), directory, uid, entry=entry, **options)
