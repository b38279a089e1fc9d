"""System checks (``manage.py check``) for the ``MEDIAGATE`` setting."""

from __future__ import annotations

import os
from typing import Any, List

from django.core.checks import Error, Tags, register

from .. import KeysError, LinkError, Signer, generate_keys
from .._links import TRANSPORTS
from ._conf import config

ID = "mediagate"


@register(Tags.security, deploy=False)
def check_settings(app_configs: Any = None, **kwargs: Any) -> List[Error]:
    """Keys present, readable and private; durations and transport valid."""
    c = config()
    errors: List[Error] = []
    try:
        Signer.from_toml(generate_keys("check"), default_ttl=c["TTL"], max_ttl=c["MAX_TTL"])
    except (LinkError, TypeError) as e:
        errors.append(Error(
            f"MEDIAGATE['TTL'] or ['MAX_TTL'] is not a valid duration: {e}",
            hint="Write durations as seconds or strings such as '10m', '2h', '7d'.",
            id=f"{ID}.E004",
        ))
    if c["TRANSPORT"] not in TRANSPORTS:
        errors.append(Error(
            f"MEDIAGATE['TRANSPORT'] must be one of {', '.join(TRANSPORTS)}",
            id=f"{ID}.E005",
        ))
    errors.extend(_check_keys(c))
    return errors


def _check_keys(c: dict) -> List[Error]:
    keys_file = c["KEYS_FILE"]
    if not keys_file:
        if os.environ.get(c["KEYS_ENV"]) is None:
            return [Error(
                f"no mediagate keys: MEDIAGATE['KEYS_FILE'] is not set and neither is "
                f"the environment variable {c['KEYS_ENV']}",
                hint="Run `mediagate keygen --out keys.toml` and set MEDIAGATE['KEYS_FILE'].",
                id=f"{ID}.E001",
            )]
        try:
            Signer.from_env(c["KEYS_ENV"])
        except KeysError as e:
            return [Error(f"the mediagate keys are invalid: {e}", id=f"{ID}.E006")]
        return []
    try:
        Signer.from_keys_file(str(keys_file), group_readable=bool(c["GROUP_READABLE"]))
    except KeysError as e:
        if e.code == "keys_unreadable":
            return [Error(
                f"the mediagate keys file cannot be read: {e}",
                hint="Check MEDIAGATE['KEYS_FILE'] and the file's owner.",
                id=f"{ID}.E002",
            )]
        if e.code == "keys_exposed":
            return [Error(
                f"the mediagate keys file may be read by other users: {e}",
                hint="chmod 600 the file (or set MEDIAGATE['GROUP_READABLE'] for 0640).",
                id=f"{ID}.E003",
            )]
        return [Error(f"the mediagate keys file is invalid: {e}", id=f"{ID}.E006")]
    return []
