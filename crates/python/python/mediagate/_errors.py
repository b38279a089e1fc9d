"""The exceptions of the mediagate package, raised by its Rust core."""

from __future__ import annotations

from typing import Optional

__all__ = ["LinkError", "SignError", "VerifyError", "KeysError"]


class LinkError(ValueError):
    """A value mediagate refuses. ``code`` is a short, stable reason code
    (the Rust library's, such as ``"bad_path"``, ``"expired"`` or
    ``"bad_duration"``); the message says what is wrong without quoting
    secrets."""

    code: str
    status: Optional[int]

    def __init__(self, message: str, code: str = "invalid", status: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    def __reduce__(self):  # keep code and status through pickle (multiprocessing, Celery)
        return (type(self), (str(self), self.code, self.status))


class SignError(LinkError):
    """A link that cannot be signed (``bad_path``, ``prefix_not_asked``,
    ``lifetime_too_long``, ``bad_claim``, ``no_user``, ...)."""


class VerifyError(LinkError):
    """A link that does not grant a request. ``code`` is the reason code
    ``mediagate serve`` answers with, ``status`` its HTTP status (403 for a
    link that does not grant; 400 for ``bad_path`` and ``ambiguous_token``;
    405 for a method no link can grant)."""


class KeysError(LinkError):
    """Keys that cannot be loaded (``keys_unreadable``, ``keys_exposed``,
    ``keys_missing``, ``secret_too_short``, ...). Messages never quote a
    value read from the keys."""
