"""Expiring signed links for private media, minted and checked by the Rust
core that ``mediagate serve`` uses (one implementation of the format).

>>> import mediagate
>>> signer = mediagate.Signer.from_toml(mediagate.generate_keys("k1"), base_url="/media")
>>> url = signer.url("42", "/videos/a.mp4", ttl="10m")
>>> url.startswith("/media/videos/a.mp4?mg_token=")
True

See ``Signer``, ``Link``, ``Verifier`` and ``Grant``; Django integration in
``mediagate.django``, a Jinja2 extension in ``mediagate.jinja``.
"""

from ._core import (
    COOKIE_NAME,
    FORMAT_VERSION,
    QUERY_PARAM,
    Grant,
    Link,
    Signer,
    Verifier,
    canonical_path,
    generate_keys,
)
from ._errors import KeysError, LinkError, SignError, VerifyError

__all__ = [
    "COOKIE_NAME",
    "FORMAT_VERSION",
    "QUERY_PARAM",
    "Grant",
    "KeysError",
    "Link",
    "LinkError",
    "SignError",
    "Signer",
    "Verifier",
    "VerifyError",
    "canonical_path",
    "generate_keys",
]
