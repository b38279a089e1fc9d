"""The Jinja2 extension: alone (as Flask or FastAPI use it) and through
Django's Jinja2 backend, each link fetched from a real `mediagate serve`."""

from __future__ import annotations

import re
import time
from pathlib import Path

import jinja2
import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile

import mediagate
from mediagate.jinja import MediagateExtension

from conftest import Server, fetch, tamper, with_user
from djproject.docs.models import Document


@pytest.fixture
def plain_server(tmp_path: Path, keys_file: Path):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs/a b.txt").write_bytes(b"hello from jinja\n")
    (root / "videos/show-1").mkdir(parents=True)
    (root / "videos/show-1/master.m3u8").write_text("#EXTM3U\n")
    # A one-second clock-skew leeway, so that a short link expires in a test.
    config = tmp_path / "mediagate.toml"
    config.write_text('leeway = "1s"\n')
    server = Server(keys_file, root, "/media", "--config", str(config))
    yield server
    server.stop()


def env_for(keys_file: Path, base: str) -> jinja2.Environment:
    env = jinja2.Environment(extensions=[MediagateExtension], autoescape=True)
    env.mediagate_signer = mediagate.Signer.from_keys_file(keys_file, base_url=base)
    return env


def test_a_plain_jinja_template_renders_links_the_server_serves(keys_file, plain_server):
    env = env_for(keys_file, plain_server.origin + "/media")
    html = env.from_string(
        '<a id="a" href="{{ signed_url("docs/a b.txt", user=uid, ttl="5m") }}">'
        '<a id="b" href="{{ signed_url("docs/a b.txt", attachment=True) }}">'
        '<a id="c" href="{{ signed_prefix_url("videos/show-1/", entry="master.m3u8") }}">'
    ).render(uid="42", user="42")
    urls = dict(re.findall(r'id="(\w)" href="([^"]+)"', html))
    assert fetch(urls["a"])[:3:2] == (200, b"hello from jinja\n")
    status, headers, _ = fetch(urls["b"])
    assert status == 200 and headers["content-disposition"].startswith('attachment; filename="a b.txt"')
    assert fetch(urls["c"])[2] == b"#EXTM3U\n"
    assert fetch(tamper(urls["a"]))[1]["mediagate-reason"] == "bad_signature"
    # Another user's link: user 42's token edited to say 43.
    token = urls["a"].split("mg_token=")[1]
    forged = urls["a"].replace(token, with_user(token, "43"))
    assert fetch(forged)[1]["mediagate-reason"] == "bad_signature"
    # Another file with 42's token.
    other = urls["a"].replace("/docs/a%20b.txt", "/videos/show-1/master.m3u8")
    assert fetch(other)[1]["mediagate-reason"] == "scope"
    # Expired: a one-second link, fetched past its expiry and the leeway.
    short = env.from_string('{{ signed_url("docs/a b.txt", ttl=1) }}').render(user="42")
    time.sleep(3.1)
    status, headers, _ = fetch(short)
    assert (status, headers["mediagate-reason"]) == (403, "expired")


def test_without_a_user_no_link_is_minted(keys_file):
    env = env_for(keys_file, "/media")
    with pytest.raises(mediagate.SignError) as e:
        env.from_string('{{ signed_url("docs/a.txt") }}').render()
    assert e.value.code == "no_user"


def test_a_signer_is_required_outside_django(keys_file, monkeypatch):
    env = jinja2.Environment(extensions=[MediagateExtension])
    import django.conf

    monkeypatch.setattr(django.conf.settings, "_wrapped", django.conf.empty)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    with pytest.raises(mediagate.SignError) as e:
        env.from_string('{{ signed_url("a.txt", user="1") }}').render()
    assert e.value.code == "no_signer"


@pytest.mark.django_db
def test_djangos_jinja2_backend_renders_links_the_server_serves(client, media_server):
    carol = User.objects.create_user("carol", password="x")
    doc = Document(owner=carol, title="Notes")
    doc.file.save("notes.txt", ContentFile(b"carol's notes\n"), save=True)
    root = Path(media_server.proc.args[media_server.proc.args.index("--root") + 1])
    (root / "videos/show-1").mkdir(parents=True, exist_ok=True)
    (root / "videos/show-1/master.m3u8").write_text("#EXTM3U\n")
    client.force_login(carol)
    page = client.get(f"/docs/{doc.pk}/jinja/").content.decode()
    urls = dict(re.findall(r'id="([\w-]+)" href="([^"]+)"', page))
    assert fetch(media_server.origin + urls["jinja"])[2] == b"carol's notes\n"
    assert fetch(media_server.origin + urls["jinja-prefix"])[2] == b"#EXTM3U\n"
    token = urls["jinja"].split("mg_token=")[1]
    from django.conf import settings

    verifier = mediagate.Verifier.from_keys_file(settings.MEDIAGATE["KEYS_FILE"])
    assert verifier.inspect(token).user == str(carol.pk)
