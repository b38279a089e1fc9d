"""Django integration: settings in one ``MEDIAGATE`` dict, system checks,
the ``{% signed_url %}``, ``{% signed_prefix_url %}`` and
``{% signed_upload_url %}`` template tags, a
storage whose ``url()`` signs for the current user, a development view, and
the ``mediagate_sign`` management command.

Add ``"mediagate.django"`` to ``INSTALLED_APPS``; see the package README.
"""

from ._conf import config, signed_prefix_url, signed_upload_url, signed_url, signer, verifier

__all__ = [
    "config", "signed_prefix_url", "signed_upload_url", "signed_url", "signer", "verifier",
]
