#!/usr/bin/env python3
"""An independent implementation of the signing half of docs/FORMAT.md.

It rebuilds every valid vector's payload and token from its claims using only
the Python standard library, and refuses every unsignable vector's claims
with the error the vector names (scope and path rules), proving that the spec is enough to interoperate
(the seed of the Django signer). Run: python3 docs/check_vectors.py
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import struct
import sys
from pathlib import Path

VECTORS = Path(__file__).resolve().parent.parent / "crates/signer/tests/vectors.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload(key_id: str, c: dict) -> bytes:
    flags = 0
    upload_bits = (
        (1 if c.get("max_size") is not None else 0)
        | (2 if c.get("sha256") is not None else 0)
        | (4 if c.get("replace") else 0)
    )
    names = ["not_before", "client_net", "disposition", "content_type", "generation", "upload"]
    for bit, name in enumerate(names):
        present = c.get(name) is not None
        if name == "disposition":
            present = c.get("attachment") is not None or c.get("inline") is not None
        if name == "upload":
            present = upload_bits != 0
        if present:
            flags |= 1 << bit
    methods = sum({"GET": 1, "HEAD": 2, "PUT": 4}[m] for m in c["methods"])
    kid = key_id.encode("ascii")
    out = bytes([1, len(kid)]) + kid + bytes([flags, methods])
    out += struct.pack(">QQ", c["issued_at"], c["expires"])
    if c.get("not_before") is not None:
        out += struct.pack(">Q", c["not_before"])
    subject = c["user"].encode("ascii")
    out += bytes([len(subject)]) + subject
    path = c["path"].encode("utf-8")
    out += struct.pack(">H", len(path)) + path
    if c.get("client_net") is not None:
        net = ipaddress.ip_network(c["client_net"], strict=False)
        out += bytes([net.version]) + net.network_address.packed + bytes([net.prefixlen])
    for kind, name in ((1, "attachment"), (0, "inline")):
        if c.get(name) is not None:
            filename = c[name].encode("utf-8")
            out += bytes([kind, len(filename)]) + filename
    if c.get("content_type") is not None:
        ct = c["content_type"].encode("ascii")
        out += bytes([len(ct)]) + ct
    if c.get("generation") is not None:
        out += struct.pack(">Q", c["generation"])
    if upload_bits:
        out += bytes([upload_bits])
        if c.get("max_size") is not None:
            out += struct.pack(">Q", c["max_size"])
        if c.get("sha256") is not None:
            out += bytes.fromhex(c["sha256"])
    return out


def refusal(c: dict):
    """The error a signer must give for these claims (§3, §5), or None."""
    path = c["path"]
    if path.startswith("/_mg/"):
        return "reserved_path"
    segments = path[1:].split("/")
    if path.endswith("/"):
        segments = segments[:-1]
    if (
        not path.startswith("/")
        or len(path.encode("utf-8")) > 1024
        or "\\" in path
        or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in path)
        or any(seg in ("", ".", "..") or len(seg.encode("utf-8")) > 255 for seg in segments if path != "/")
    ):
        return "bad_path"
    if c["scope"] == "exact" and path.endswith("/"):
        return "prefix_not_asked"
    if c["scope"] == "prefix" and not path.endswith("/"):
        return "prefix_without_slash"
    upload_claims = c.get("max_size") is not None or c.get("sha256") is not None or c.get("replace")
    if upload_claims and "PUT" not in c["methods"]:
        return "upload_without_put"
    if c.get("replace") and c["scope"] == "prefix":
        return "replace_below_prefix"
    return None


def main() -> int:
    v = json.loads(VECTORS.read_text())
    secrets = {k["id"]: unb64url(k["secret"]) for k in v["keys"]}
    failures = 0
    for case in v["valid"]:
        key_id = case.get("signing_key") or v["active"]
        link_key = hmac.new(secrets[key_id], b"mediagate link key v1", hashlib.sha256).digest()
        body = payload(key_id, case["claims"])
        token = b64url(body + hmac.new(link_key, body, hashlib.sha256).digest())
        tag = unb64url(case["token"])[-32:]
        if b64url(tag[:16]) != case["link_id"]:
            failures += 1
            print(f"FAIL {case['name']}: link id")
        elif token != case["token"] or body.hex() != case["payload_hex"]:
            failures += 1
            print(f"FAIL {case['name']}")
        elif refusal(case["claims"]) is not None:
            failures += 1
            print(f"FAIL {case['name']}: signable, but refused as {refusal(case['claims'])}")
    for case in v["unsignable"]:
        got = refusal(case["claims"])
        if got != case["error"]:
            failures += 1
            print(f"FAIL {case['name']}: {got} where {case['error']} is expected")
    for case in v["invalid"]:
        # Canonical-encoding rule: re-encoding the decoded bytes must give the token back.
        tok = case["token"]
        try:
            canonical = b64url(unb64url(tok)) == tok and "=" not in tok
        except ValueError:
            canonical = False
        if not canonical and case["error"] != "malformed_token":
            failures += 1
            print(f"FAIL {case['name']}: non-canonical token expected to be malformed")
    passed = len(v["valid"]) + len(v["invalid"]) + len(v["unsignable"]) - failures
    print(f"vectors: {passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
