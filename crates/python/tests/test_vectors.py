"""The package reproduces every vector of crates/signer/tests/vectors.json:
the same token from the same claims, the same refusal codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mediagate

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "signer/tests/vectors.json").read_text()
)


def keys_toml(active: str = VECTORS["active"]) -> str:
    lines = [f'active = "{active}"', ""]
    for k in VECTORS["keys"]:
        lines += ["[[keys]]", f'id = "{k["id"]}"', f'secret = "{k["secret"]}"', ""]
    return "\n".join(lines)


SIGNERS = {
    k["id"]: mediagate.Signer.from_toml(keys_toml(k["id"]), max_ttl=VECTORS["max_ttl_seconds"])
    for k in VECTORS["keys"]
}
VERIFIER = mediagate.Verifier.from_toml(
    keys_toml(), leeway=VECTORS["leeway_seconds"], max_ttl=VECTORS["max_ttl_seconds"]
)


def sign(c: dict, key: str = VECTORS["active"]) -> mediagate.Link:
    signer = SIGNERS[key]
    make = signer.prefix if c["scope"] == "prefix" else signer.link
    return make(
        c["user"], c["path"],
        issued_at=c["issued_at"], expires_at=c["expires"], methods=c["methods"],
        not_before=c.get("not_before"), client_ip=c.get("client_net"),
        attachment=c.get("attachment"), inline=c.get("inline"),
        content_type=c.get("content_type"), generation=c.get("generation"),
        max_size=c.get("max_size"), sha256=c.get("sha256"),
        **({"replace": True} if c.get("replace") else {}),
    )


def check(r: dict, token: str) -> mediagate.Grant:
    """Verifies `token` for the request `r`, and its upload, if any."""
    grant = VERIFIER.verify(
        token, r["path"], method=r["method"], client_ip=r.get("client_ip"), now=r["now"]
    )
    up = r.get("upload")
    if up is not None:
        grant.check_upload(
            content_type=up.get("content_type"), length=up["length"], sha256=up["sha256"]
        )
    return grant


STATUS = {"too_large": 413, "content_type": 415, "digest_mismatch": 400}


def test_the_vectors_file_has_cases_of_each_kind():
    assert len(VECTORS["valid"]) >= 20
    assert len(VECTORS["invalid"]) >= 20
    assert len(VECTORS["unsignable"]) >= 5


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid_vectors_sign_to_the_same_token_and_verify(case):
    link = sign(case["claims"], case.get("signing_key", VECTORS["active"]))
    assert link.token == case["token"]
    assert link.link_id == case["link_id"]
    grant = check(case["request"], case["token"])
    assert grant.user == case["claims"]["user"]
    assert grant.path == case["claims"]["path"]
    assert grant.scope == case["claims"]["scope"]
    assert list(grant.methods) == case["claims"]["methods"]
    assert int(grant.expires_at.timestamp()) == case["claims"]["expires"]
    assert grant.max_size == case["claims"].get("max_size")
    assert grant.sha256 == case["claims"].get("sha256")
    assert grant.replace == case["claims"].get("replace", False)
    assert grant.link_id == case["link_id"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid_vectors_are_refused_with_their_code(case):
    with pytest.raises(mediagate.VerifyError) as e:
        check(case["request"], case["token"])
    assert e.value.code == case["error"]
    assert e.value.status == STATUS.get(case["error"], 403)


@pytest.mark.parametrize("case", VECTORS["unsignable"], ids=lambda c: c["name"])
def test_unsignable_vectors_are_refused_with_their_code(case):
    with pytest.raises(mediagate.SignError) as e:
        sign(case["claims"])
    assert e.value.code == case["error"]
