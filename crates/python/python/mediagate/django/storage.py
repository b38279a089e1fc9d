"""``SignedMediaStorage``: a ``FileSystemStorage`` whose ``url(name)`` is a
signed link for the current request's user, so templates that say
``{{ doc.file.url }}`` hand out private links without edits."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible

from ._conf import signed_url
from .middleware import current_user


@deconstructible(path="mediagate.django.storage.SignedMediaStorage")
class SignedMediaStorage(FileSystemStorage):
    """Files under ``MEDIA_ROOT`` (as ``FileSystemStorage``); ``url()``
    signs for the user ``CurrentUserMiddleware`` recorded, with
    ``MEDIAGATE``'s TTL and transport. Outside a request (a shell, a task)
    it raises ``mediagate.SignError`` (code ``no_user``) unless
    ``ANONYMOUS_URL`` is set: sign there with ``mediagate.django.signed_url``
    and an explicit user."""

    def url(self, name: Any) -> str:
        return signed_url(name, current_user())
