"""The Django integration in a real project: templates render links with
the tag and with ``{{ doc.file.url }}``, and a real ``mediagate serve``
over the same MEDIA_ROOT and keys serves them (and refuses forgeries,
other users' files, expired and revoked links with their codes)."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.checks import run_checks
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.template import engines
from django.test import override_settings

import mediagate
from mediagate.django import signed_url
from mediagate.django.storage import SignedMediaStorage

from conftest import fetch, mediagate_bin, tamper, wait_until, with_user
from djproject.docs.models import Document

pytestmark = pytest.mark.django_db
CORPUS = Path(__file__).resolve().parents[4] / "shared/corpus/traversal-public.txt"


def hrefs(html: str) -> Dict[str, str]:
    found = dict(re.findall(r'id="([\w-]+)" (?:href|src)="([^"]+)"', html))
    return {k: v.replace("&amp;", "&") for k, v in found.items()}


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob():
    return User.objects.create_user("bob", password="x")


@pytest.fixture
def doc(alice):
    d = Document(owner=alice, title="Contract")
    d.file.save("contract.pdf", ContentFile(b"%PDF-1.7 alice's contract\n"), save=True)
    return d


def test_the_project_passes_its_system_checks():
    assert [m for m in run_checks() if m.id.startswith("mediagate")] == []


def test_checks_report_missing_exposed_and_invalid_settings(tmp_path: Path):
    def ids(**conf):
        with override_settings(MEDIAGATE=conf):
            return sorted(m.id for m in run_checks() if m.id.startswith("mediagate"))

    assert ids(KEYS_FILE=tmp_path / "absent.toml") == ["mediagate.E002"]
    exposed = tmp_path / "keys.toml"
    exposed.write_text(mediagate.generate_keys("k"))
    os.chmod(exposed, 0o644)
    assert ids(KEYS_FILE=exposed) == ["mediagate.E003"]
    os.chmod(exposed, 0o600)
    assert ids(KEYS_FILE=exposed) == []
    assert ids(KEYS_FILE=exposed, TTL="soon") == ["mediagate.E004"]
    assert ids(KEYS_FILE=exposed, MAX_TTL=-1) == ["mediagate.E004"]
    assert ids(KEYS_FILE=exposed, TRANSPORT="carrier-pigeon") == ["mediagate.E005"]
    assert ids(KEYS_ENV="MG_SURELY_UNSET") == ["mediagate.E001"]
    broken = tmp_path / "broken.toml"
    broken.write_text("active = 3\n")
    os.chmod(broken, 0o600)
    assert ids(KEYS_FILE=broken) == ["mediagate.E006"]


def test_manage_py_check_fails_on_an_exposed_keys_file(tmp_path: Path):
    exposed = tmp_path / "keys.toml"
    exposed.write_text(mediagate.generate_keys("k"))
    os.chmod(exposed, 0o644)
    with override_settings(MEDIAGATE={"KEYS_FILE": exposed}):
        with pytest.raises(Exception) as e:
            call_command("check")
    assert "mediagate.E003" in str(e.value)


def test_tag_and_storage_links_are_served_by_mediagate_serve(client, alice, doc, media_server):
    client.force_login(alice)
    page = client.get(f"/docs/{doc.pk}/")
    assert page.status_code == 200
    links = hrefs(page.content.decode())
    assert set(links) == {"tag", "download", "storage"}
    for name, url in links.items():
        assert url.startswith("/media/docs/contract"), url
        status, headers, body = fetch(media_server.origin + url)
        assert (status, body) == (200, b"%PDF-1.7 alice's contract\n"), (name, status, body)
    _, headers, _ = fetch(media_server.origin + links["download"])
    assert headers["content-disposition"].startswith("attachment;")
    # The links are for alice: signed with her id.
    token = links["tag"].split("mg_token=")[1]
    assert mediagate.Verifier.from_keys_file(settings.MEDIAGATE["KEYS_FILE"]).inspect(
        token).user == str(alice.pk)


def test_forged_foreign_expired_and_revoked_links_are_refused(client, alice, bob, doc,
                                                              media_server):
    url = signed_url(doc.file, alice)
    base = media_server.origin

    # Tampered: the last character of the token changed.
    tampered = tamper(url)
    assert fetch(base + tampered)[0] == 403
    assert fetch(base + tampered)[1]["mediagate-reason"] == "bad_signature"

    # Another user's file with alice's token.
    bobs = Document(owner=bob, title="Bob's")
    bobs.file.save("bob.pdf", ContentFile(b"bob's\n"), save=True)
    token = url.split("?")[1]
    status, headers, _ = fetch(f"{base}/media/{bobs.file.name}?{token}")
    assert (status, headers["mediagate-reason"]) == (403, "scope")

    # Bob's own link to bob's file is served; alice's link edited to say
    # bob (or bob's edited to say alice) is a forgery.
    other = signed_url(bobs.file, bob)
    assert fetch(base + other)[0] == 200
    forged = with_user(token.split("=", 1)[1], str(bob.pk))
    status, headers, _ = fetch(f"{base}{url.split('?')[0]}?mg_token={forged}")
    assert (status, headers["mediagate-reason"]) == (403, "bad_signature")

    # Expired.
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    expired = signed_url(doc.file, alice, issued_at=past, ttl=60)
    status, headers, body = fetch(base + expired)
    assert (status, headers["mediagate-reason"], body) == (403, "expired", b"expired\n")

    # Revoked: alice's links taken back; bob's still served.
    revocations = Path(settings.MEDIAGATE["KEYS_FILE"]).with_name("revocations.toml")
    subprocess.run(
        [mediagate_bin(), "revoke", "--user", str(alice.pk), "--revocations", str(revocations)],
        check=True, capture_output=True,
    )
    try:
        assert wait_until(lambda: fetch(base + url)[1].get("mediagate-reason") == "revoked")
        assert fetch(base + other)[0] == 200
    finally:
        # Empty rules again (a removed file leaves a server with its last
        # rules, which is the safe reading of a file gone missing).
        revocations.write_text("")
        assert wait_until(lambda: fetch(base + url)[0] == 200)


def test_prefix_tag_gives_a_playlist_url_whose_segments_are_served(client, alice, media_server):
    root = Path(settings.MEDIA_ROOT) / "videos/show-1"
    root.mkdir(parents=True, exist_ok=True)
    (root / "master.m3u8").write_text("#EXTM3U\nseg-1.ts\n")
    (root / "seg-1.ts").write_bytes(b"\x47" * 188)
    client.force_login(alice)
    page = client.get("/shows/show-1/")
    url = hrefs(page.content.decode())["player"]
    assert re.fullmatch(r"/media/_mg/[\w-]+/videos/show-1/master\.m3u8", url), url
    status, _, body = fetch(media_server.origin + url)
    assert (status, body) == (200, b"#EXTM3U\nseg-1.ts\n")
    segment = url.rsplit("/", 1)[0] + "/seg-1.ts"  # as the player resolves it
    assert fetch(media_server.origin + segment)[2] == b"\x47" * 188
    outside = url.replace("/videos/show-1/master.m3u8", "/docs/contract.pdf")
    assert fetch(media_server.origin + outside)[1]["mediagate-reason"] == "scope"


def test_the_upload_tag_signs_a_put_link_for_the_user_and_never_for_nobody(alice):
    template = engines["django"].from_string(
        '{% load mediagate %}{% signed_upload_url "avatars/a.jpg" max_size=5000 '
        'content_type="image/jpeg" user=who %}'
    )
    url = template.render({"who": alice})
    grant = mediagate.django.verifier().inspect(url.split("mg_token=")[1])
    assert grant.methods == ("PUT",)
    assert (grant.user, grant.path) == (str(alice.pk), "/avatars/a.jpg")
    assert (grant.max_size, grant.content_type, grant.replace) == (5000, "image/jpeg", False)
    with pytest.raises(mediagate.SignError) as e:
        template.render({"who": AnonymousUser()})
    assert e.value.code == "no_user"


def test_anonymous_users_get_an_error_or_the_configured_fallback(doc):
    template = engines["django"].from_string("{% load mediagate %}{% signed_url doc.file %}")
    with pytest.raises(mediagate.SignError) as e:
        template.render({"doc": doc, "user": AnonymousUser()})
    assert e.value.code == "no_user"
    with override_settings(MEDIAGATE={**settings.MEDIAGATE, "ANONYMOUS_URL": "/login/"}):
        assert template.render({"doc": doc, "user": AnonymousUser()}) == "/login/"


def test_storage_url_outside_a_request_refuses_to_sign_for_nobody(doc):
    with pytest.raises(mediagate.SignError) as e:
        doc.file.url
    assert e.value.code == "no_user"
    assert isinstance(doc.file.storage, SignedMediaStorage)


def test_user_id_attribute_and_transport_are_configurable(alice, doc):
    conf = {**settings.MEDIAGATE, "USER_ID": "username", "TRANSPORT": "path"}
    with override_settings(MEDIAGATE=conf):
        url = signed_url(doc.file, alice)
        assert url.startswith("/media/_mg/")
        token = url.split("/")[3]
        assert mediagate.Verifier.from_keys_file(conf["KEYS_FILE"]).inspect(token).user == "alice"


def test_the_management_command_signs_a_link_the_server_serves(doc, media_server):
    out = io.StringIO()
    call_command("mediagate_sign", doc.file.name, "--user", "42", "--ttl", "10m", stdout=out)
    url = out.getvalue().strip()
    assert fetch(media_server.origin + url)[2] == b"%PDF-1.7 alice's contract\n"
    out = io.StringIO()
    call_command("mediagate_sign", "docs/", "--user", "42", "--prefix", "--entry",
                 "contract.pdf", "--base", media_server.origin + "/media", stdout=out)
    assert fetch(out.getvalue().strip())[0] == 200
    for bad in (["--ttl", "soon"], ["--ttl", "30d"], ["--prefix"]):
        with pytest.raises(CommandError) as e:
            call_command("mediagate_sign", doc.file.name, "--user", "42", *bad)
        assert "\n" not in str(e.value)


def test_the_dev_view_serves_and_refuses_as_the_server_does(client, alice, doc):
    url = signed_url(doc.file, alice)
    r = client.get(url)
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == b"%PDF-1.7 alice's contract\n"
    assert r["Content-Type"] == "application/pdf"
    head = client.head(url)
    assert head.status_code == 200 and head["Content-Length"] == str(len(b"%PDF-1.7 alice's contract\n"))
    r = client.get(tamper(url))
    assert (r.status_code, r["mediagate-reason"], r.content) == (403, "bad_signature",
                                                                 b"bad_signature\n")
    assert client.get("/media/docs/contract.pdf")["mediagate-reason"] == "missing_token"
    assert client.post(url).status_code == 405
    path_form = signed_url(doc.file, alice, transport="path")
    assert client.get(path_form).status_code == 200
    gone = signed_url("docs/nothing.pdf", alice)
    assert (client.get(gone).status_code, client.get(gone)["mediagate-reason"]) == (404,
                                                                                   "not_found")


def test_the_dev_view_never_leaves_media_root(client, alice, tmp_path: Path):
    secret = Path(settings.MEDIA_ROOT).parent / "secret.txt"
    secret.write_text("outside")
    media = Path(settings.MEDIA_ROOT)
    (media / "pub").mkdir(exist_ok=True)
    link = Path(media / "pub" / "escape")
    if not link.exists():
        link.symlink_to(secret.parent)
    (media / "leak.txt").unlink(missing_ok=True)
    (media / "leak.txt").symlink_to(secret)
    # A prefix link to everything, so only the path rules stand in the way.
    signer = mediagate.django.signer()
    token = signer.prefix(str(alice.pk), "/", ttl=60).token
    for target in ["/pub/escape/secret.txt", "/leak.txt"]:
        r = client.get(f"/media{target}?mg_token={token}")
        assert r.status_code == 404, target
    payloads = CORPUS.read_text().splitlines() if CORPUS.exists() else []
    payloads += ["/../secret.txt", "/%2e%2e/secret.txt", "/pub/..%2f..%2fsecret.txt"]
    for p in payloads:
        if not p.startswith("/"):
            continue
        r = client.get(f"/media{p}?mg_token={token}")
        body = b"".join(r.streaming_content) if r.streaming else r.content
        assert r.status_code != 200 or b"outside" not in body, p
        assert r.status_code in (400, 403, 404), (p, r.status_code)


def test_the_storage_signs_for_the_user_under_asgi_too(alice, doc):
    # Django's ASGI handler runs the middleware chain asynchronously: the
    # user the middleware records must reach storage.url() there as well.
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    client = AsyncClient()
    client.force_login(alice)
    page = async_to_sync(client.get)(f"/docs/{doc.pk}/")
    assert page.status_code == 200
    token = hrefs(page.content.decode())["storage"].split("mg_token=")[1]
    verifier = mediagate.Verifier.from_keys_file(settings.MEDIAGATE["KEYS_FILE"])
    assert verifier.inspect(token).user == str(alice.pk)


def test_the_dev_view_answers_one_byte_range_as_the_server_does(client, alice, doc,
                                                                media_server):
    url = signed_url(doc.file, alice)
    body = b"%PDF-1.7 alice's contract\n"
    cases = [
        ("bytes=0-3", 206, body[:4], f"bytes 0-3/{len(body)}"),
        ("bytes=-5", 206, body[-5:], f"bytes {len(body) - 5}-{len(body) - 1}/{len(body)}"),
        ("bytes=9-", 206, body[9:], f"bytes 9-{len(body) - 1}/{len(body)}"),
        ("bytes=5-1000", 206, body[5:], f"bytes 5-{len(body) - 1}/{len(body)}"),
        ("bytes=0-1,3-4", 200, body, None),   # several: the whole file
        ("items=0-3", 200, body, None),       # another unit: ignored
        ("bytes=x-3", 200, body, None),       # malformed: ignored
        ("bytes=1000-", 416, b"", f"bytes */{len(body)}"),
        ("bytes=-0", 416, b"", f"bytes */{len(body)}"),
    ]
    for header, status, want, content_range in cases:
        r = client.get(url, HTTP_RANGE=header)
        got = b"".join(r.streaming_content) if r.streaming else r.content
        assert (r.status_code, got) == (status, want), header
        assert r.get("Content-Range") == content_range, header
        if status != 416:
            assert r["Content-Length"] == str(len(want)), header
            assert r["Accept-Ranges"] == "bytes"
        # The server answers the same.
        s_status, s_headers, s_body = fetch(media_server.origin + url, {"Range": header})
        assert (s_status, s_headers.get("content-range")) == (status, content_range), header
        if status != 416:
            assert s_body == want, header


def test_the_dev_view_takes_an_address_it_cannot_parse_as_unknown(client, alice, doc):
    # A Unix socket or a proxy's placeholder in REMOTE_ADDR: no error page;
    # links bound to an address are refused as they would be, others served.
    plain = signed_url(doc.file, alice)
    bound = signed_url(doc.file, alice, client_ip="203.0.113.7")
    for addr in ["", "unix:/run/app.sock", "not an address"]:
        assert client.get(plain, REMOTE_ADDR=addr).status_code == 200, addr
        r = client.get(bound, REMOTE_ADDR=addr)
        assert (r.status_code, r["mediagate-reason"]) == (403, "ip"), addr
    assert client.get(bound, REMOTE_ADDR="203.0.113.7").status_code == 200
