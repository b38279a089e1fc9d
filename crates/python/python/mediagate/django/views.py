"""A development view that checks links with the Rust core and serves the
file from ``MEDIA_ROOT``, for ``runserver``: production runs ``mediagate
serve`` (conditional requests, caching, sendfile, revocations: this view
does not read a revocations file). One byte range is
answered 206 (players seek with it; Safari plays no video without it),
several get the whole file, as the server does. Same refusals and reason codes
as the server (the body and the ``mediagate-reason`` header), and no way
out of ``MEDIA_ROOT``: the path is the server's canonical path, and each
directory is opened without following symlinks."""

from __future__ import annotations

import ipaddress
import mimetypes
import os
import stat
from typing import Any, Iterator, Optional, Tuple, Union

from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.encoding import escape_uri_path

from .. import VerifyError
from ._conf import mount, verifier

REASON = "mediagate-reason"


def refusal(code: str, status: int) -> HttpResponse:
    """The server's refusal: the reason code as text and in a header."""
    response = HttpResponse(code + "\n", status=status, content_type="text/plain; charset=utf-8")
    response[REASON] = code
    response["Cache-Control"] = "no-store"
    return response


def _raw_path(request: Any) -> str:
    # The path as the client sent it, before the WSGI server decoded it,
    # when the server keeps it (gunicorn, uWSGI); else re-encoded.
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0]
    return escape_uri_path(request.path)


def _client_ip(request: Any) -> Optional[str]:
    """The peer's address, or None when the server gives none that parses
    (a Unix socket, a proxy's placeholder): IP-bound links are then refused
    with ``ip``, not answered with an error."""
    addr = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None


def _open_below(root: str, path: str) -> Optional[int]:
    """Opens ``path`` (canonical, starting with ``/``) below ``root``
    without following a symlink in any component; None when there is no
    regular file there."""
    parts = path.lstrip("/").split("/")
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                          dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        return None
    os.set_blocking(file_fd, True)
    return file_fd


UNSATISFIABLE = "unsatisfiable"
CHUNK = 64 * 1024


def byte_range(header: Optional[str], size: int) -> Union[None, Tuple[int, int], str]:
    """The one range of ``size`` bytes a ``Range`` header asks for, as
    (first, last) inclusive; None for the whole file (no header, another
    unit, a malformed one, or several ranges); ``UNSATISFIABLE`` when it
    lies past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes="):].strip().partition("-")
    if not sep or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            return UNSATISFIABLE
        return (max(size - n, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = int(last) if last else size - 1
    return (start, min(end, size - 1))


def _read(f: Any, length: int) -> Iterator[bytes]:
    with f:
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def serve(request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
    """Checks the request's link and answers with the file (GET, HEAD)."""
    if request.method not in ("GET", "HEAD"):
        return refusal("method_not_allowed", 405)
    raw = _raw_path(request)
    base = mount()
    if not raw.startswith(base + "/"):
        return refusal("not_found", 404)
    try:
        grant, file = verifier().check_request(
            request.method,
            raw[len(base):],
            query=request.META.get("QUERY_STRING") or None,
            cookie=request.META.get("HTTP_COOKIE"),
            client_ip=_client_ip(request),
        )
    except VerifyError as e:
        return refusal(e.code, e.status or 403)
    fd = _open_below(str(settings.MEDIA_ROOT), file)
    if fd is None:
        return refusal("not_found", 404)
    size = os.fstat(fd).st_size
    content_type = grant.content_type or mimetypes.guess_type(file)[0] or "application/octet-stream"
    wanted = byte_range(request.META.get("HTTP_RANGE"), size)
    if wanted == UNSATISFIABLE:
        os.close(fd)
        response: HttpResponse = HttpResponse(status=416, content_type="text/plain; charset=utf-8")
        response["Content-Range"] = f"bytes */{size}"
        return response
    if request.method == "HEAD":
        os.close(fd)
        response = HttpResponse(content_type=content_type)
        length = size
    elif isinstance(wanted, tuple):
        first, last = wanted
        length = last - first + 1
        f = os.fdopen(fd, "rb")
        f.seek(first)
        response = StreamingHttpResponse(_read(f, length), status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    else:
        response = FileResponse(os.fdopen(fd, "rb"), content_type=content_type)
        length = size
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if grant.content_disposition:
        response["Content-Disposition"] = grant.content_disposition
    response["Cache-Control"] = "private, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response
