"""``CurrentUserMiddleware``: makes the request's user known to
``SignedMediaStorage.url()`` for the length of the request."""

from __future__ import annotations

import contextvars
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

_current_user: contextvars.ContextVar[Any] = contextvars.ContextVar("mediagate_user", default=None)


def current_user() -> Any:
    """The user of the request being handled, or None outside a request."""
    return _current_user.get()


class CurrentUserMiddleware:
    """Put it after ``AuthenticationMiddleware`` in ``MIDDLEWARE``. Works
    under WSGI and ASGI; the user is read lazily, so a request that renders
    no link does not load it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = _current_user.set(getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            _current_user.reset(token)

    async def __acall__(self, request: Any) -> Any:
        token = _current_user.set(getattr(request, "user", None))
        try:
            return await self.get_response(request)
        finally:
            _current_user.reset(token)
