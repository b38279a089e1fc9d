"""Upload links from Python: the claims they carry, the errors for claims
that cannot be signed, and real uploads to a `mediagate serve` with
`[uploads]` on."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

from mediagate import LinkError, SignError, Signer, Verifier

from conftest import Server

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


@pytest.fixture
def signer(keys_file: Path) -> Signer:
    return Signer.from_keys_file(keys_file)


def test_an_upload_link_carries_its_limits(signer: Signer, keys_file: Path) -> None:
    digest = hashlib.sha256(JPEG).digest()
    link = signer.upload("7", "/in/a.jpg", ttl=60, max_size=1 << 20,
                         content_type="image/jpeg", sha256=digest)
    grant = Verifier.from_keys_file(keys_file).inspect(link.token)
    assert grant.methods == ("PUT",)
    assert grant.max_size == 1 << 20
    assert grant.sha256 == digest.hex()
    assert grant.content_type == "image/jpeg"
    assert grant.replace is False
    again = signer.upload("7", "/in/a.jpg", ttl=60, sha256=digest.hex(), replace=True)
    g = Verifier.from_keys_file(keys_file).inspect(again.token)
    assert (g.sha256, g.replace, g.max_size) == (digest.hex(), True, None)


def test_claims_that_cannot_be_signed_raise_with_a_code(signer: Signer) -> None:
    with pytest.raises(SignError) as e:
        signer.link("7", "/a", ttl=60, max_size=10)
    assert e.value.code == "upload_without_put"
    # New files below a directory: a prefix link, create-only.
    below = signer.prefix("7", "/in/", ttl=60, methods="PUT", max_size=10)
    assert below.token
    with pytest.raises(SignError) as e:
        signer.upload("7", "/in/", ttl=60)
    assert e.value.code == "prefix_not_asked"
    with pytest.raises(LinkError) as e:
        signer.upload("7", "/a", ttl=60, sha256="abc")
    assert e.value.code == "bad_sha256"
    with pytest.raises(TypeError):
        signer.upload("7", "/a", ttl=60, sha256=42)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        signer.upload("7", "/a", ttl=60, max_size=-1)


def put(url: str, body: bytes, headers: Optional[Dict[str, str]] = None
        ) -> Tuple[int, Dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_uploads_to_a_running_server(tmp_path: Path, keys_file: Path, signer: Signer) -> None:
    root = tmp_path / "media"
    (root / "in").mkdir(parents=True)
    config = tmp_path / "mediagate.toml"
    config.write_text("[uploads]\nmin_free = 0\nmax_size = \"1M\"\n")
    server = Server(keys_file, root, "/media", "--config", str(config))
    try:
        base = server.origin + "/media"
        jpeg = signer.upload("7", "/in/a.jpg", ttl=60, content_type="image/jpeg",
                             sha256=hashlib.sha256(JPEG).digest())
        status, headers, _ = put(jpeg.url(base), JPEG, {"Content-Type": "image/jpeg"})
        assert status == 201 and headers["etag"]
        assert (root / "in/a.jpg").read_bytes() == JPEG
        # Again: create-only.
        status, headers, body = put(jpeg.url(base), JPEG, {"Content-Type": "image/jpeg"})
        assert (status, headers["mediagate-reason"]) == (409, "exists")
        # An HTML page as a JPEG.
        html = signer.upload("7", "/in/b.jpg", ttl=60, content_type="image/jpeg")
        status, headers, _ = put(html.url(base), b"<html><script>x</script>",
                                 {"Content-Type": "image/jpeg"})
        assert (status, headers["mediagate-reason"]) == (415, "content_mismatch")
        # Larger than the link allows.
        small = signer.upload("7", "/in/c.bin", ttl=60, max_size=3)
        status, headers, _ = put(small.url(base), b"four")
        assert (status, headers["mediagate-reason"]) == (413, "too_large")
        assert sorted(p.name for p in (root / "in").iterdir()) == ["a.jpg"]
        # The file is served at once, with the ETag the upload answered.
        replace = signer.upload("7", "/in/a.jpg", ttl=60, replace=True)
        status, headers, _ = put(replace.url(base), b"new bytes")
        assert status == 204
        got = signer.link("7", "/in/a.jpg", ttl=60).url(base)
        with urllib.request.urlopen(got, timeout=10) as r:
            assert r.read() == b"new bytes"
            assert r.headers["ETag"] == headers["etag"]
    finally:
        server.stop()
