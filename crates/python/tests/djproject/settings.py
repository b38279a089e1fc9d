"""A real Django project for the mediagate tests: private documents under
MEDIA_ROOT, links minted by the tag, the storage and the Jinja2 extension."""

import os
import tempfile
from pathlib import Path

import mediagate

# A fresh media root and keys file for each test run (the tests start a
# `mediagate serve` over the same two).
WORK = Path(tempfile.mkdtemp(prefix="mediagate-django-"))
MEDIA_ROOT = WORK / "media"
MEDIA_ROOT.mkdir()
KEYS_FILE = WORK / "keys.toml"
_fd = os.open(KEYS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(_fd, "w") as f:
    f.write(mediagate.generate_keys("test-1"))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "djproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mediagate.django",
    "djproject.docs",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mediagate.django.middleware.CurrentUserMiddleware",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "APP_DIRS": True,
        "OPTIONS": {"environment": "mediagate.django.jinja2.environment"},
    },
]

MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "mediagate.django.storage.SignedMediaStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

MEDIAGATE = {
    "KEYS_FILE": KEYS_FILE,
    "TTL": "10m",
}
