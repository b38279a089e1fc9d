"""Type stubs for the Rust core of the mediagate package."""

import datetime
import ipaddress
from os import PathLike
from typing import Iterable, Optional, Tuple, Union, final

_Duration = Union[int, float, datetime.timedelta, str]
"""Seconds, a timedelta, or a string such as ``"90s"``, ``"10m"``, ``"2h 30m"``, ``"7d"``."""
_Instant = Union[datetime.datetime, int, float]
"""A timezone-aware datetime (a naive one is refused), or Unix seconds."""
_Address = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]
_Network = Union[_Address, ipaddress.IPv4Network, ipaddress.IPv6Network]
_Methods = Union[str, Iterable[str]]
"""``"GET"``, ``"GET,HEAD"``, or names such as ``("GET", "HEAD")``; default GET and HEAD.
``PUT`` is carried in the link with a ``UserWarning``: ``mediagate serve`` answers PUT with 405
until uploads land."""

__all__ = [
    "COOKIE_NAME",
    "FORMAT_VERSION",
    "QUERY_PARAM",
    "Grant",
    "Link",
    "Signer",
    "Verifier",
    "canonical_path",
    "generate_keys",
]

FORMAT_VERSION: int
QUERY_PARAM: str
COOKIE_NAME: str

def generate_keys(key_id: str = "k1") -> str:
    """A new keys file's text with one random key (write it with mode 0600)."""

def canonical_path(raw: str) -> str:
    """The decoded canonical path of a raw URL path, as the server reads it;
    ``VerifyError`` (code ``bad_path``, status 400) for one it refuses."""

@final
class Link:
    """A signed link. ``repr`` leaves the token out."""

    @property
    def token(self) -> str: ...
    @property
    def path(self) -> str:
        """The signed path (a directory ending in ``/`` for a prefix link)."""
    @property
    def expires_at(self) -> datetime.datetime: ...
    @property
    def link_id(self) -> str:
        """The id ``mediagate revoke --link`` takes back."""
    def url(self, base: Optional[str] = None) -> str:
        """``base`` + path + ``?mg_token=...`` (``base`` defaults to the signer's ``base_url``)."""
    def url_for(self, file: str, base: Optional[str] = None) -> str:
        """The query-form URL of ``file`` within the link's scope."""
    def path_form(self, base: Optional[str] = None) -> str:
        """``base`` + ``/_mg/<token>`` + path, for HLS and DASH playlists."""
    def path_form_for(self, file: str, base: Optional[str] = None) -> str:
        """The path-form URL of ``file`` within the link's scope."""
    def set_cookie(
        self, mount: str, domain: Optional[str] = None, now: Optional[_Instant] = None
    ) -> str:
        """A ``Set-Cookie`` value carrying the token for requests below ``mount`` + path."""

@final
class Signer:
    """Mints links with the active key of a keyring. Immutable, thread-safe."""

    @staticmethod
    def from_keys_file(
        path: Union[str, "PathLike[str]"],
        *,
        base_url: Optional[str] = None,
        default_ttl: Optional[_Duration] = None,
        max_ttl: Optional[_Duration] = None,
        group_readable: bool = False,
    ) -> "Signer": ...
    @staticmethod
    def from_env(
        var: str = "MEDIAGATE_KEYS",
        *,
        base_url: Optional[str] = None,
        default_ttl: Optional[_Duration] = None,
        max_ttl: Optional[_Duration] = None,
    ) -> "Signer": ...
    @staticmethod
    def from_toml(
        text: str,
        *,
        base_url: Optional[str] = None,
        default_ttl: Optional[_Duration] = None,
        max_ttl: Optional[_Duration] = None,
    ) -> "Signer": ...
    @property
    def key_id(self) -> str: ...
    @property
    def base_url(self) -> Optional[str]: ...
    def link(
        self,
        user: str,
        path: str,
        *,
        ttl: Optional[_Duration] = None,
        expires_at: Optional[_Instant] = None,
        not_before: Optional[_Instant] = None,
        issued_at: Optional[_Instant] = None,
        methods: Optional[_Methods] = None,
        client_ip: Optional[_Network] = None,
        attachment: Optional[str] = None,
        inline: Optional[str] = None,
        content_type: Optional[str] = None,
        generation: Optional[int] = None,
        max_size: Optional[int] = None,
        sha256: Optional[Union[bytes, str]] = None,
        replace: bool = False,
    ) -> Link:
        """A link for ``user`` to exactly the file ``path`` (decoded, starting with ``/``)."""
    def upload(
        self,
        user: str,
        path: str,
        *,
        ttl: Optional[_Duration] = None,
        expires_at: Optional[_Instant] = None,
        not_before: Optional[_Instant] = None,
        issued_at: Optional[_Instant] = None,
        methods: Optional[_Methods] = None,
        client_ip: Optional[_Network] = None,
        content_type: Optional[str] = None,
        generation: Optional[int] = None,
        max_size: Optional[int] = None,
        sha256: Optional[Union[bytes, str]] = None,
        replace: bool = False,
    ) -> Link:
        """An upload link: ``PUT`` of exactly ``path``, creating it unless ``replace``,
        within ``max_size`` bytes, sent as ``content_type`` (whose signature the first
        bytes must bear), with the SHA-256 ``sha256`` (32 bytes or 64 hex characters)."""
    def prefix(
        self,
        user: str,
        dir: str,
        *,
        ttl: Optional[_Duration] = None,
        expires_at: Optional[_Instant] = None,
        not_before: Optional[_Instant] = None,
        issued_at: Optional[_Instant] = None,
        methods: Optional[_Methods] = None,
        client_ip: Optional[_Network] = None,
        attachment: Optional[str] = None,
        inline: Optional[str] = None,
        content_type: Optional[str] = None,
        generation: Optional[int] = None,
        max_size: Optional[int] = None,
        sha256: Optional[Union[bytes, str]] = None,
        replace: bool = False,
    ) -> Link:
        """A link for ``user`` to every file below ``dir`` (which ends in ``/``);
        ``replace=True`` is refused (``replace_below_prefix``): a prefix link only creates."""
    def url(
        self,
        user: str,
        path: str,
        base: Optional[str] = None,
        *,
        ttl: Optional[_Duration] = None,
        expires_at: Optional[_Instant] = None,
        not_before: Optional[_Instant] = None,
        issued_at: Optional[_Instant] = None,
        methods: Optional[_Methods] = None,
        client_ip: Optional[_Network] = None,
        attachment: Optional[str] = None,
        inline: Optional[str] = None,
        content_type: Optional[str] = None,
        generation: Optional[int] = None,
    ) -> str:
        """``signer.link(user, path, ...).url(base)`` in one call."""

@final
class Grant:
    """The claims of a link whose signature checked out."""

    @property
    def user(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def scope(self) -> str:
        """``"exact"`` or ``"prefix"``."""
    @property
    def methods(self) -> Tuple[str, ...]: ...
    @property
    def issued_at(self) -> datetime.datetime: ...
    @property
    def expires_at(self) -> datetime.datetime: ...
    @property
    def not_before(self) -> Optional[datetime.datetime]: ...
    @property
    def client_net(self) -> Optional[str]: ...
    @property
    def disposition(self) -> Optional[str]: ...
    @property
    def filename(self) -> Optional[str]: ...
    @property
    def content_disposition(self) -> Optional[str]: ...
    @property
    def content_type(self) -> Optional[str]: ...
    @property
    def generation(self) -> Optional[int]: ...
    @property
    def max_size(self) -> Optional[int]: ...
    @property
    def sha256(self) -> Optional[str]: ...
    @property
    def replace(self) -> bool: ...
    def check_upload(
        self,
        *,
        content_type: Optional[str] = None,
        length: Optional[int] = None,
        sha256: Optional[Union[bytes, str]] = None,
    ) -> None:
        """Checks an upload against the link's upload claims, as the server does; raises
        ``VerifyError`` (``content_type`` 415, ``too_large`` 413, ``digest_mismatch`` 400)."""
    @property
    def key_id(self) -> str: ...
    @property
    def link_id(self) -> str: ...

@final
class Verifier:
    """Checks links with every key of a keyring. Immutable, thread-safe."""

    @staticmethod
    def from_keys_file(
        path: Union[str, "PathLike[str]"],
        *,
        leeway: Optional[_Duration] = None,
        max_ttl: Optional[_Duration] = None,
        group_readable: bool = False,
    ) -> "Verifier": ...
    @staticmethod
    def from_env(
        var: str = "MEDIAGATE_KEYS",
        *,
        leeway: Optional[_Duration] = None,
        max_ttl: Optional[_Duration] = None,
    ) -> "Verifier": ...
    @staticmethod
    def from_toml(
        text: str, *, leeway: Optional[_Duration] = None, max_ttl: Optional[_Duration] = None
    ) -> "Verifier": ...
    def verify(
        self,
        token: str,
        path: str,
        *,
        method: str = "GET",
        client_ip: Optional[_Address] = None,
        now: Optional[_Instant] = None,
    ) -> Grant:
        """Checks ``token`` for a request of the decoded path ``path``."""
    def check_request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[str] = None,
        cookie: Optional[str] = None,
        client_ip: Optional[_Address] = None,
        now: Optional[_Instant] = None,
    ) -> Tuple[Grant, str]:
        """Checks a request as ``mediagate serve`` does (raw path below the
        mount, raw query, Cookie header); the grant and the decoded file path.
        Revocations are the server's: they are not checked here."""
    def inspect(self, token: str) -> Grant:
        """The claims once the signature checks out; no clock or request check."""
