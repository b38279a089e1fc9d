"""``manage.py mediagate_sign PATH --user 42 --ttl 10m``: print a signed link."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mediagate import LinkError
from mediagate._links import sign_prefix_url, sign_url
from mediagate.django._conf import config, signer


class Command(BaseCommand):
    help = "Print a signed link to a file (or, with --prefix, a directory) below MEDIA_ROOT."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="the file, relative to MEDIA_ROOT (or starting with /)")
        parser.add_argument("--user", required=True, help="the user id the link is for")
        parser.add_argument("--ttl", help="lifetime, such as 90s, 10m, 2h (default MEDIAGATE['TTL'])")
        parser.add_argument("--prefix", action="store_true",
                            help="grant every file below PATH, a directory ending in /")
        parser.add_argument("--entry", help="with --prefix: the file to link to (master.m3u8)")
        parser.add_argument("--attachment", nargs="?", const=True, metavar="FILENAME",
                            help="download as a file (named FILENAME, default the file's name)")
        parser.add_argument("--inline", metavar="FILENAME", help="show inline, named FILENAME")
        parser.add_argument("--content-type", help="the Content-Type to serve it with")
        parser.add_argument("--client-ip", help="bind the link to this address or network")
        parser.add_argument("--transport", choices=["query", "path"],
                            help="how the URL carries the token (default MEDIAGATE['TRANSPORT'])")
        parser.add_argument("--base", help="the base URL (default MEDIAGATE['BASE_URL'])")

    def handle(self, *args: Any, **o: Any) -> None:
        claims = {"ttl": o["ttl"], "client_ip": o["client_ip"], "base": o["base"]}
        try:
            s = signer()
            if o["prefix"]:
                transport = o["transport"] or "path"
                url = sign_prefix_url(s, o["path"], o["user"], entry=o["entry"],
                                      transport=transport, **claims)
            else:
                if o["entry"]:
                    raise CommandError("--entry needs --prefix")
                transport = o["transport"] or config()["TRANSPORT"]
                url = sign_url(s, o["path"], o["user"], transport=transport,
                               attachment=o["attachment"], inline=o["inline"],
                               content_type=o["content_type"], **claims)
        except LinkError as e:
            raise CommandError(f"{e} ({e.code})") from None
        self.stdout.write(url)
