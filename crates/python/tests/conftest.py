"""Fixtures: a real `mediagate serve` process on 127.0.0.1 (port 0, the
bound port read from its log), and HTTP fetches against it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[3]


def mediagate_bin() -> str:
    """The `mediagate` command: $MEDIAGATE_BIN, else the workspace's build."""
    explicit = os.environ.get("MEDIAGATE_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "mediagate"
        if candidate.exists():
            return str(candidate)
    pytest.fail("no mediagate binary: run `cargo build` first, or set MEDIAGATE_BIN")


class Server:
    """A `mediagate serve` the test started; stopped with SIGTERM by PID."""

    def __init__(self, keys: Path, root: Path, mount: str = "/media", *extra: str) -> None:
        self.log: List[str] = []
        self.proc = subprocess.Popen(
            [mediagate_bin(), "serve", "--keys", str(keys), "--root", str(root),
             "--listen", "127.0.0.1:0", "--mount", mount, *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"},
        )
        self.addr: Optional[str] = None
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"serving addr=(\S+)", line)
                if m and self.addr is None:
                    self.addr = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(20) or self.addr is None:
            self.stop()
            raise RuntimeError("mediagate serve did not start:\n" + "".join(self.log))

    @property
    def origin(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def fetch(url: str, headers: Optional[Dict[str, str]] = None,
          method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a request."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.fixture(scope="session")
def media_server() -> Iterator[Server]:
    """`mediagate serve` over the Django project's MEDIA_ROOT and keys."""
    from django.conf import settings

    server = Server(settings.MEDIAGATE["KEYS_FILE"], settings.MEDIA_ROOT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    """A fresh keys file, mode 0600."""
    import mediagate

    path = tmp_path / "keys.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(mediagate.generate_keys("k1"))
    return path


def wait_until(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def tamper(url: str) -> str:
    """`url` with one character in the middle of its token changed: still a
    well-formed token, whose MAC no longer matches."""
    m = re.search(r"(?:mg_token=|/_mg/)([A-Za-z0-9_-]+)", url)
    assert m, url
    i = m.start(1) + (m.end(1) - m.start(1)) // 2
    return url[:i] + ("A" if url[i] != "A" else "B") + url[i + 1:]


def with_user(token: str, user: str) -> str:
    """`token` with its user claim replaced by `user` (same length), the
    MAC left as it was: another user's link, forged."""
    import base64

    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    kid = raw[1]
    flags = raw[2 + kid]
    at = 2 + kid + 2 + 16 + (8 if flags & 1 else 0)
    assert raw[at] == len(user), "same-length users only"
    raw[at + 1:at + 1 + len(user)] = user.encode()
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
