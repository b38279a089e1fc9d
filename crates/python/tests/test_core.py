"""The Python surface of the Rust core: signing, checking, and every bad
argument answered by an exception, never a crash."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pickle
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mediagate
from mediagate import KeysError, LinkError, SignError, Signer, Verifier, VerifyError

KEYS = mediagate.generate_keys("k1")
SIGNER = Signer.from_toml(KEYS, base_url="https://media.example.com/media")
VERIFIER = Verifier.from_toml(KEYS)
UTC = dt.timezone.utc


def test_a_link_round_trips_with_every_claim():
    now = dt.datetime.now(UTC).replace(microsecond=0)
    link = SIGNER.link(
        "42", "/docs/a b.pdf", ttl=dt.timedelta(minutes=10), not_before=now,
        methods=("GET",), client_ip="203.0.113.0/24", attachment="contract.pdf",
        content_type="application/pdf", generation=3,
    )
    assert link.url() == "https://media.example.com/media/docs/a%20b.pdf?mg_token=" + link.token
    g = VERIFIER.verify(link.token, "/docs/a b.pdf", client_ip="203.0.113.9")
    assert (g.user, g.path, g.scope, g.methods) == ("42", "/docs/a b.pdf", "exact", ("GET",))
    assert g.not_before == now
    assert g.expires_at == link.expires_at == now + dt.timedelta(minutes=10)
    assert g.client_net == "203.0.113.0/24"
    assert (g.disposition, g.filename) == ("attachment", "contract.pdf")
    assert g.content_disposition.startswith("attachment;")
    assert (g.content_type, g.generation, g.key_id) == ("application/pdf", 3, "k1")
    assert g.link_id == link.link_id
    assert g.expires_at.tzinfo is not None


@pytest.mark.parametrize("ttl", [600, 600.0, dt.timedelta(minutes=10), "10m", "600s", " 10m "])
def test_ttl_is_seconds_a_timedelta_or_a_duration_string(ttl):
    link = SIGNER.link("42", "/a.txt", ttl=ttl, issued_at=1_800_000_000)
    assert link.expires_at.timestamp() == 1_800_000_600


def test_prefix_links_only_by_an_explicit_call_and_render_each_transport():
    with pytest.raises(SignError) as e:
        SIGNER.link("42", "/videos/show-1/", ttl=60)
    assert e.value.code == "prefix_not_asked"
    assert "Signer.prefix" in str(e.value)
    link = SIGNER.prefix("42", "/videos/show-1/", ttl=60)
    entry = link.path_form_for("/videos/show-1/master.m3u8")
    assert entry == f"https://media.example.com/media/_mg/{link.token}/videos/show-1/master.m3u8"
    assert link.url_for("/videos/show-1/seg 1.ts", base="/m") == (
        f"/m/videos/show-1/seg%201.ts?mg_token={link.token}")
    with pytest.raises(SignError) as e:
        link.url_for("/videos/show-2/a.ts")
    assert e.value.code == "outside_scope"
    cookie = link.set_cookie("/media", domain="example.com")
    assert cookie.startswith(f"mg_token={link.token}; Path=/media/videos/show-1/")
    assert "Domain=example.com" in cookie and "HttpOnly" in cookie


def test_repr_never_shows_the_token():
    link = SIGNER.link("42", "/a.txt", ttl=60)
    assert link.token not in repr(link)
    assert "/a.txt" in repr(link)
    assert "secret" not in repr(SIGNER)


def test_verify_refuses_with_the_servers_codes():
    link = SIGNER.link("42", "/a.txt", ttl=60, issued_at=1_800_000_000)
    cases = [
        (dict(token=link.token, path="/b.txt", now=1_800_000_010), "scope", 403),
        (dict(token=link.token, path="/a.txt", now=1_800_000_100), "expired", 403),
        (dict(token=link.token[:-2] + "AA", path="/a.txt", now=1_800_000_010),
         "bad_signature", 403),
        (dict(token="", path="/a.txt"), "malformed_token", 403),
        (dict(token=link.token, path="/../a.txt"), "bad_path", 400),
        (dict(token=link.token, path="/a.txt", method="POST"), "method_not_allowed", 405),
        (dict(token=link.token, path="/a.txt", method="PUT", now=1_800_000_010), "method", 403),
    ]
    for kwargs, code, status in cases:
        with pytest.raises(VerifyError) as e:
            VERIFIER.verify(**kwargs)
        assert (e.value.code, e.value.status) == (code, status), kwargs


def test_check_request_finds_the_token_as_the_server_does():
    link = SIGNER.prefix("7", "/v/", ttl=60)
    grant, file = VERIFIER.check_request("GET", "/v/a%20b.ts", query="mg_token=" + link.token)
    assert (grant.user, file) == ("7", "/v/a b.ts")
    grant, file = VERIFIER.check_request("HEAD", f"/_mg/{link.token}/v/x.ts")
    assert file == "/v/x.ts"
    grant, file = VERIFIER.check_request("GET", "/v/x.ts", cookie=f"a=1; mg_token={link.token}")
    assert file == "/v/x.ts"
    refusals = [
        (dict(path="/v/x.ts"), "missing_token", 403),
        (dict(path=f"/_mg/{link.token}/v/x.ts", query="mg_token=" + link.token),
         "ambiguous_token", 400),
        (dict(path="/v/x.ts", query=f"mg_token={link.token}&mg_token={link.token}"),
         "ambiguous_token", 400),
        (dict(path="/v/%2e%2e/x.ts", query="mg_token=" + link.token), "bad_path", 400),
        (dict(path="/v/a%2Fb.ts", query="mg_token=" + link.token), "bad_path", 400),
        (dict(path="/w/x.ts", query="mg_token=" + link.token), "scope", 403),
        (dict(path="/v/x.ts", query="mg_token="), "malformed_token", 403),
    ]
    for kwargs, code, status in refusals:
        with pytest.raises(VerifyError) as e:
            VERIFIER.check_request("GET", **kwargs)
        assert (e.value.code, e.value.status) == (code, status), kwargs


def test_inspect_checks_the_signature_only():
    link = SIGNER.link("42", "/a.txt", ttl=60, issued_at=1_000_000_000)
    assert VERIFIER.inspect(link.token).user == "42"  # long expired, still explained
    other = Verifier.from_toml(mediagate.generate_keys("k1"))
    with pytest.raises(VerifyError) as e:
        other.inspect(link.token)
    assert e.value.code == "bad_signature"


def test_canonical_path_is_the_servers():
    assert mediagate.canonical_path("/a%20b/c.txt") == "/a b/c.txt"
    for bad in ["/a/../b", "/a//b", "a", "/a/%2e%2e/b", "/_mg/x/y", "/a\x00b"]:
        with pytest.raises(VerifyError) as e:
            mediagate.canonical_path(bad)
        assert e.value.code == "bad_path"


BAD_SIGNS = [
    # (arguments, exception, code)
    (dict(user="", path="/a", ttl=60), SignError, "bad_claim"),
    (dict(user="a b", path="/a", ttl=60), SignError, "bad_claim"),
    (dict(user="é", path="/a", ttl=60), SignError, "bad_claim"),
    (dict(user="1", path="a.txt", ttl=60), SignError, "bad_path"),
    (dict(user="1", path="/a/../b", ttl=60), SignError, "bad_path"),
    (dict(user="1", path="/_mg/x", ttl=60), SignError, "reserved_path"),
    (dict(user="1", path="/a"), SignError, "missing_expiry"),
    (dict(user="1", path="/a", ttl=0), SignError, "non_positive_lifetime"),
    (dict(user="1", path="/a", ttl=-5), SignError, "non_positive_lifetime"),
    (dict(user="1", path="/a", ttl="8d"), SignError, "lifetime_too_long"),
    (dict(user="1", path="/a", ttl="soon"), LinkError, "bad_duration"),
    (dict(user="1", path="/a", ttl=float("nan")), LinkError, "bad_duration"),
    (dict(user="1", path="/a", ttl=float("inf")), LinkError, "bad_duration"),
    (dict(user="1", path="/a", ttl=10**30), LinkError, "bad_duration"),
    (dict(user="1", path="/a", expires_at=dt.datetime(2030, 1, 1)), LinkError, "naive_datetime"),
    (dict(user="1", path="/a", expires_at=-1), LinkError, "bad_time"),
    (dict(user="1", path="/a", expires_at=10**20), LinkError, "bad_time"),
    (dict(user="1", path="/a", ttl=60, methods="GET,POST"), LinkError, "bad_method"),
    (dict(user="1", path="/a", ttl=60, methods=""), SignError, "no_methods"),
    (dict(user="1", path="/a", ttl=60, client_ip="300.1.1.1"), LinkError, "bad_ip"),
    (dict(user="1", path="/a", ttl=60, client_ip="10.0.0.0/33"), LinkError, "bad_ip"),
    (dict(user="1", path="/a", ttl=60, attachment="a/b"), SignError, "bad_claim"),
    (dict(user="1", path="/a", ttl=60, attachment="a", inline="b"), LinkError, "bad_disposition"),
    (dict(user="1", path="/a", ttl=60, content_type="text"), SignError, "bad_claim"),
    (dict(user="1", path="/a", ttl=60, not_before=4_000_000_000), SignError,
     "not_before_after_expiry"),
]


@pytest.mark.parametrize("kwargs,exc,code", BAD_SIGNS, ids=lambda v: str(v)[:40])
def test_bad_values_raise_a_coded_exception(kwargs, exc, code):
    with pytest.raises(exc) as e:
        SIGNER.link(**kwargs)
    assert e.value.code == code
    assert isinstance(e.value, ValueError)
    assert str(e.value)


@pytest.mark.parametrize("kwargs", [
    dict(user=42, path="/a", ttl=60),
    dict(user="1", path=b"/a", ttl=60),
    dict(user="1", path="/a", ttl=[60]),
    dict(user="1", path="/a", ttl=True),
    dict(user="1", path="/a", expires_at="tomorrow"),
    dict(user="1", path="/a", ttl=60, methods=[1]),
    dict(user="1", path="/a", ttl=60, generation=-1),
    dict(user="1", path="/a", ttl=60, generation=2**64),
    dict(user="1", path="/a", ttl=60, attachment=3),
])
def test_wrong_types_raise_type_or_overflow_errors(kwargs):
    with pytest.raises((TypeError, OverflowError)):
        SIGNER.link(**kwargs)


def test_a_put_link_is_minted_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        link = SIGNER.link("1", "/up.bin", ttl=60, methods="PUT")
    assert VERIFIER.inspect(link.token).methods == ("PUT",)


def test_ipaddress_objects_are_accepted():
    link = SIGNER.link("1", "/a", ttl=60, client_ip=ipaddress.ip_network("2001:db8::/32"))
    g = VERIFIER.verify(link.token, "/a", client_ip=ipaddress.ip_address("2001:db8::1"))
    assert g.client_net == "2001:db8::/32"
    with pytest.raises(VerifyError) as e:
        VERIFIER.verify(link.token, "/a", client_ip="192.0.2.1")
    assert e.value.code == "ip"


def test_base_urls_with_a_query_or_fragment_are_refused():
    for base in ["/media?x=1", "/media#f", "/me dia"]:
        with pytest.raises(LinkError) as e:
            SIGNER.url("1", "/a", base, ttl=60)
        assert e.value.code == "bad_base_url"
    with pytest.raises(LinkError) as e:
        Signer.from_toml(KEYS).url("1", "/a", ttl=60)
    assert e.value.code == "missing_base_url"


def test_exceptions_keep_their_code_through_pickle():
    try:
        SIGNER.link("1", "/a")
    except SignError as e:
        again = pickle.loads(pickle.dumps(e))
    assert type(again) is SignError and again.code == "missing_expiry"


def test_keys_files_must_be_private_and_valid(tmp_path: Path, keys_file: Path):
    assert Signer.from_keys_file(keys_file).key_id == "k1"
    os.chmod(keys_file, 0o644)
    with pytest.raises(KeysError) as e:
        Signer.from_keys_file(keys_file)
    assert e.value.code == "keys_exposed"
    os.chmod(keys_file, 0o640)
    assert Verifier.from_keys_file(keys_file, group_readable=True)
    with pytest.raises(KeysError) as e:
        Signer.from_keys_file(tmp_path / "missing.toml")
    assert e.value.code == "keys_unreadable"
    bad = tmp_path / "bad.toml"
    secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
    bad.write_text(f'active = "x"\n[[keys]]\nid = "y"\nsecret = "{secret}"\n')
    os.chmod(bad, 0o600)
    with pytest.raises(KeysError) as e:
        Signer.from_keys_file(bad)
    assert e.value.code == "active_not_listed"
    assert secret not in str(e.value)


def test_keys_from_the_environment(monkeypatch):
    monkeypatch.delenv("MG_TEST_KEYS", raising=False)
    with pytest.raises(KeysError) as e:
        Signer.from_env("MG_TEST_KEYS")
    assert e.value.code == "keys_missing"
    monkeypatch.setenv("MG_TEST_KEYS", "k9:tooshort")
    with pytest.raises(KeysError) as e:
        Signer.from_env("MG_TEST_KEYS")
    assert "tooshort" not in str(e.value)
    secret = "AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o"
    monkeypatch.setenv("MG_TEST_KEYS", f"k9:{secret}")
    signer = Signer.from_env("MG_TEST_KEYS", base_url="/m", default_ttl="1h")
    assert signer.key_id == "k9"
    assert signer.url("1", "/a").startswith("/m/a?mg_token=")


def test_a_signer_is_shared_safely_between_threads():
    tokens: list = []
    errors: list = []

    def work(n: int) -> None:
        try:
            for i in range(500):
                tokens.append((f"/{n}/{i}", SIGNER.link(str(n), f"/{n}/{i}", ttl=60).token))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(tokens) == 4000
    for path, token in tokens[::97]:
        assert VERIFIER.verify(token, path).path == path


printable_user = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)
segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"),
    min_size=1, max_size=20,
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=300, deadline=None)
@given(user=printable_user, parts=st.lists(segment, min_size=1, max_size=4))
def test_any_valid_user_and_path_round_trip(user, parts):
    path = "/" + "/".join(parts)
    try:
        link = SIGNER.link(user, path, ttl=60)
    except SignError as e:
        assert e.code in ("bad_path", "reserved_path")
        return
    assert VERIFIER.verify(link.token, path).user == user
    grant, file = VERIFIER.check_request("GET", link.url("").split("?")[0],
                                         query=link.url("").split("?")[1])
    assert file == path and grant.user == user


@settings(max_examples=500, deadline=None)
@given(
    user=st.text(max_size=200), path=st.text(max_size=300), ttl=st.one_of(
        st.text(max_size=20), st.integers(), st.floats(), st.none()),
    filename=st.one_of(st.none(), st.text(max_size=300)),
    content_type=st.one_of(st.none(), st.text(max_size=200)),
)
def test_arbitrary_input_never_crashes(user, path, ttl, filename, content_type):
    try:
        SIGNER.link(user, path, ttl=ttl, attachment=filename, content_type=content_type)
    except (LinkError, TypeError, OverflowError):
        pass
    try:
        VERIFIER.check_request("GET", path, query=user, cookie=filename)
    except VerifyError:
        pass
