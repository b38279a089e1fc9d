from django.conf import settings
from django.db import models


class Document(models.Model):
    """A private file: its URL is a signed link for whoever views the page."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    file = models.FileField(upload_to="docs/")
