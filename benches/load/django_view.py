"""The seed baseline: serving protected media from a Django view.

A minimal single-file Django app, as a web app would do it without
mediagate: check a TimestampSigner token tied to the path, then stream the
file with FileResponse. Served by gunicorn (sync workers) in the load
harness: `gunicorn django_view:application`.

Environment: MEDIA_ROOT (directory), SIGNING_SECRET.
"""
import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ["SIGNING_SECRET"],
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)

import django  # noqa: E402

django.setup()

from django.core.signing import BadSignature, TimestampSigner  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import FileResponse, Http404, HttpResponseForbidden  # noqa: E402
from django.urls import re_path  # noqa: E402
from django.utils._os import safe_join  # noqa: E402

MEDIA_ROOT = os.environ["MEDIA_ROOT"]
SIGNER = TimestampSigner(salt="media")


def media(request, path):
    token = request.GET.get("t", "")
    try:
        signed_path = SIGNER.unsign(token, max_age=600)
    except BadSignature:
        return HttpResponseForbidden("bad link\n")
    if signed_path != "/" + path:
        return HttpResponseForbidden("wrong path\n")
    try:
        full = safe_join(MEDIA_ROOT, path)
        return FileResponse(open(full, "rb"))
    except (ValueError, OSError):
        raise Http404()


def sign(path):
    """The token for `path` (used by the harness)."""
    return SIGNER.sign(path)


urlpatterns = [re_path(r"^media/(?P<path>.+)$", media)]
application = get_wsgi_application()

if __name__ == "__main__":
    import sys

    print(sign(sys.argv[1]))
