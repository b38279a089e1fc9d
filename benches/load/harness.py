#!/usr/bin/env python3
"""End-to-end load harness: mediagate vs nginx secure_link vs a Django view.

Run through benches/load/run.sh, which installs what is missing and builds
the release binary. Everything listens on 127.0.0.1 high ports, every wrk
run is bounded by its duration, and every process started here is stopped
by its PID on the way out.

  --quick     one short round per workload (what CI runs so this never rots)
  --out FILE  where to write the report (default: BENCHMARKS.md, or
              target/load/BENCHMARKS.quick.md for a quick or partial run)
  --only TEXT, --rounds N, --seconds S
              a partial run, for profiling one workload: only the workloads
              whose name contains TEXT, N rounds of S seconds each
"""
import argparse
import hashlib
import base64
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEDIAGATE = ROOT / "target/release/mediagate"
VENV = ROOT / "target/load-venv"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STARTED = []  # (name, Popen) to stop on exit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start(name, args, log=None, **kw):
    """Starts a server; its stderr goes to the file `log`, or nowhere."""
    err = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, **kw)
    if log:
        err.close()
    STARTED.append((name, p))
    return p


def stop_all():
    for name, p in reversed(STARTED):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    STARTED.clear()


def http_status(port, target, scheme="http"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if scheme == "https":
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(64).decode("latin1")
    return int(head.split()[1])


# ---------------------------------------------------------------- fixtures

def make_fixtures(media: Path, big_mib: int):
    (media / "hls/show").mkdir(parents=True)
    (media / "small.bin").write_bytes(os.urandom(1024))
    (media / "1m.bin").write_bytes(os.urandom(1 << 20))
    block = os.urandom(1 << 20)
    with open(media / "100m.bin", "wb") as f:
        for _ in range(big_mib):
            f.write(block)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4"]
    for i in range(16):
        (media / f"hls/show/seg-{i:03}.ts").write_bytes(os.urandom(64 * 1024))
        lines += ["#EXTINF:4.0,", f"seg-{i:03}.ts"]
    (media / "hls/show/master.m3u8").write_text("\n".join(lines + ["#EXT-X-ENDLIST", ""]))


def make_certificate(tmp: Path):
    """One self-signed ECDSA P-256 certificate for 127.0.0.1, for every
    server's HTTPS listener: the same certificate, key exchange and cipher
    suites on both sides."""
    cert, key = tmp / "tls.pem", tmp / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


# ---------------------------------------------------------------- servers

def start_mediagate_accel(tmp: Path, media: Path, keys: Path):
    """A second mediagate, with the same keys, in X-Accel-Redirect mode."""
    port = free_port()
    config = tmp / "mediagate-accel.toml"
    config.write_text('accel_redirect = "/_protected"\n')
    p = start("mediagate-accel", [MEDIAGATE, "serve", "--keys", keys, "--root", media,
                                  "--listen", f"127.0.0.1:{port}", "--mount", "/media",
                                  "--config", config], env=dict(os.environ, MEDIAGATE_LOG="warn"))
    wait_port(port)
    return p, port


def start_mediagate(tmp: Path, media: Path, tls):
    keys = tmp / "keys.toml"
    subprocess.run([MEDIAGATE, "keygen", "--out", keys, "--id", "bench"], check=True,
                   stderr=subprocess.DEVNULL)
    port, tls_port = free_port(), free_port()
    env = dict(os.environ, MEDIAGATE_LOG="warn")
    # The auth-only endpoint too, for the nginx auth_request row (it is
    # outside the mount: the other rows do not touch it); and HTTPS beside
    # plain HTTP.
    config = tmp / "mediagate.toml"
    config.write_text(f'auth_path = "/auth"\n[tls]\nlisten = "127.0.0.1:{tls_port}"\n'
                      f'certificates = [{{ cert = "{tls[0]}", key = "{tls[1]}" }}]\n')
    p = start("mediagate", [MEDIAGATE, "serve", "--keys", keys, "--root", media,
                            "--listen", f"127.0.0.1:{port}", "--mount", "/media",
                            "--config", config], env=env)
    wait_port(port)
    wait_port(tls_port)

    def sign(path, prefix=False):
        args = [MEDIAGATE, "sign", "--keys", keys, "--user", "bench-user", "--path", path,
                "--ttl", "1h", "--base-url", "/media"]
        if prefix:
            args += ["--prefix", "--form", "path"]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()

    return p, port, tls_port, sign


NGINX_SECRET = "bench-secret-not-for-production"


def nginx_token(expires, signed):
    digest = hashlib.md5(f"{expires}{signed} {NGINX_SECRET}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def nginx_head(d: Path, workers: str, connections: int = 4096) -> str:
    """The start of every benchmarked nginx's config, up to its http
    block's own servers: the same tuning for each."""
    return f"""
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
"""


def start_nginx(tmp: Path, media: Path, workers: str, tls, connections: int = 4096):
    port, tls_port, h2_port = free_port(), free_port(), free_port()
    d = tmp / f"nginx-{workers}"
    d.mkdir()
    conf = d / "nginx.conf"
    conf.write_text(nginx_head(d, workers, connections) + f"""
    server {{
        listen 127.0.0.1:{port} reuseport;
        listen 127.0.0.1:{tls_port} ssl reuseport;
        listen 127.0.0.1:{h2_port} http2 reuseport;
        ssl_certificate {tls[0]};
        ssl_certificate_key {tls[1]};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {media};
        # A prefix link: the MAC covers the directory, like mediagate's.
        location ~ ^(?<dir>/hls/[^/]+/) {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$dir {NGINX_SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
        location / {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {NGINX_SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
    }}
}}
""")
    p = start(f"nginx-{workers}", [NGINX, "-c", str(conf), "-p", str(d)])
    wait_port(port)
    return p, port, tls_port, h2_port


# ---------------------------------------------------------------- uploads

UPLOAD_MIB = 100


def start_mediagate_uploads(tmp: Path, keys: Path, fsync: bool):
    """A mediagate taking uploads into a root of its own, `fsync` on or off;
    its access log (one line per upload) kept in the file returned, to say
    why one was refused."""
    name = f"mediagate-up-{'fsync' if fsync else 'nofsync'}"
    log = tmp / f"{name}.log"
    root = tmp / name
    (root / "up").mkdir(parents=True)
    port = free_port()
    config = tmp / f"{name}.toml"
    config.write_text(f'[uploads]\nmax_size = "200M"\nmin_free = 0\nmax_concurrent = 256\n'
                      f'fsync = {"true" if fsync else "false"}\n')
    p = start(name, [MEDIAGATE, "serve", "--keys", keys, "--root", root,
                     "--listen", f"127.0.0.1:{port}", "--config", config],
              log=log, env=dict(os.environ, MEDIAGATE_LOG="info"))
    wait_port(port)
    return p, port, log


def start_nginx_dav(tmp: Path):
    """nginx, one worker, taking `PUT` into a root of its own (dav_methods),
    the link checked by secure_link as for downloads; its body buffer files
    on the same file system. nginx has no setting to fsync an upload."""
    port = free_port()
    d = tmp / "nginx-dav"
    (d / "root/up").mkdir(parents=True)
    (d / "root/up").chmod(0o777)  # nginx's worker runs as an unprivileged user
    conf = d / "nginx.conf"
    conf.write_text(nginx_head(d, "1") + f"""
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {d}/root;
        client_max_body_size 200m;
        location /up/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {NGINX_SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            dav_methods PUT;
            dav_access user:rw group:r;
        }}
    }}
}}
""")
    p = start("nginx-dav", [NGINX, "-c", str(conf), "-p", str(d)])
    wait_port(port)
    return p, port


def put_script(tmp: Path) -> Path:
    """A wrk script that PUTs a body of UPLOAD_MIB MiB."""
    script = tmp / "put.lua"
    script.write_text(f'wrk.method = "PUT"\nwrk.body = string.rep("u", {UPLOAD_MIB} * 1048576)\n'
                      'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    return script


def wrk_put(port, target, seconds, connections, script, pid=None):
    """Uploads with wrk for `seconds`: MiB uploaded per second, non-2xx
    answers, and (with `pid`) that process's peak RSS meanwhile."""
    w = subprocess.Popen(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s", "-s", script,
         f"http://127.0.0.1:{port}{target}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while w.poll() is None:
        if pid is not None:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                peak = max(peak, int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024)
            except (OSError, AttributeError):
                pass
        time.sleep(0.05)
    out = w.stdout.read()
    w.wait()
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    elapsed = re.search(r"requests in ([\d.]+)(m?s)", out)
    secs = float(elapsed.group(1)) / (1000 if elapsed.group(2) == "ms" else 1)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return requests * UPLOAD_MIB / secs, int(non2xx.group(1)) if non2xx else 0, peak


def refusals(tmp: Path, log: Path) -> str:
    """Why mediagate refused uploads, from its access log `log`: reason
    codes counted, and the free space left where the uploads are written."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    reasons = {}
    for line in lines:
        m = re.search(r'status=(\d+) .*reason="([^"]*)"', line)
        if m and not m.group(1).startswith("2"):
            key = f"{m.group(1)} {m.group(2)}"
            reasons[key] = reasons.get(key, 0) + 1
    said = ", ".join(f"{n} x {k}" for k, n in sorted(reasons.items())) or "no reason logged"
    free = shutil.disk_usage(tmp).free / (1 << 30)
    return f"{said}; {free:.1f} GiB free in {tmp}"


def upload_rows_need_gib(quick: bool) -> int:
    """Free space the upload rows need where they write, in GiB: each
    server keeps the file uploaded, and every upload in flight has a
    temporary file of up to UPLOAD_MIB (4 clients, then 64 for the peak
    row; nginx buffers a body in a file of its own as well). Measured: 2.4
    GiB at most in quick mode."""
    return 3 if quick else 8


def upload_rows(tmp: Path, seconds: int, rounds: int, quick: bool):
    """100 MiB uploads: mediagate with and without fsync against nginx's
    dav_methods PUT (which never fsyncs), 4 clients at once, rounds
    alternated; then mediagate's peak RSS during 64 concurrent uploads."""
    keys = tmp / "keys.toml"
    free = shutil.disk_usage(tmp).free / (1 << 30)
    need = upload_rows_need_gib(quick)
    if free < need:
        raise RuntimeError(f"the upload rows need {need} GiB free in {tmp}, "
                           f"there are {free:.1f}: a full disk would refuse uploads (507)")
    script = put_script(tmp)
    ng, ng_port = start_nginx_dav(tmp)
    mg_sync, sync_port, sync_log = start_mediagate_uploads(tmp, keys, True)
    mg_nosync, nosync_port, nosync_log = start_mediagate_uploads(tmp, keys, False)
    link = subprocess.run([MEDIAGATE, "sign", "--keys", keys, "--user", "bench", "--path",
                           "/up/bench.bin", "--methods", "PUT", "--replace", "--ttl", "2h"],
                          check=True, capture_output=True, text=True).stdout.strip()
    expires = int(time.time()) + 3600
    ng_link = f"/up/bench.bin?md5={nginx_token(expires, '/up/bench.bin')}&expires={expires}"
    targets = [("mediagate, fsync", sync_port, link, sync_log),
               ("mediagate, no fsync", nosync_port, link, nosync_log),
               ("nginx dav_methods PUT", ng_port, ng_link, None)]
    seconds = max(seconds, 2 if quick else 8)
    results = {}
    for r in range(rounds):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for who, port, target, log in order:
            mibps, non2xx, _ = wrk_put(port, target, seconds, 4, script)
            if non2xx:
                why = refusals(tmp, log) if log else "see nginx's error log"
                raise RuntimeError(f"{who}: {non2xx} uploads refused ({why})")
            results.setdefault(who, []).append(mibps)
            print(f"100 MiB PUT, 4 clients        {who:<22} {mibps:9.1f} MiB/s", flush=True)
    peak_seconds = 3 if quick else 10
    _, _, peak = wrk_put(nosync_port, link, peak_seconds, 64, script, mg_nosync.pid)
    print(f"mediagate peak RSS with 64 concurrent 100 MiB uploads: {peak / (1 << 20):.1f} MiB",
          flush=True)
    for name, p in list(STARTED):
        if p in (ng, mg_sync, mg_nosync):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
    return results, peak


def start_nginx_front(tmp: Path, name: str, mg_port: int, locations: str):
    """nginx (one worker) in front of mediagate on `mg_port` (a kept-alive
    upstream named `mediagate`), with the server's `locations`."""
    port = free_port()
    d = tmp / name
    d.mkdir()
    conf = d / "nginx.conf"
    conf.write_text(nginx_head(d, "1") + f"""
    upstream mediagate {{
        server 127.0.0.1:{mg_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
{locations}
    }}
}}
""")
    p = start(name, [NGINX, "-c", str(conf), "-p", str(d)])
    wait_port(port)
    return p, port


def start_nginx_auth(tmp: Path, media: Path, mg_port: int):
    """nginx serving the media from disk once mediagate's auth-only
    endpoint grants the link (auth_request)."""
    return start_nginx_front(tmp, "nginx-auth", mg_port, f"""
        location /media/ {{
            auth_request /_mediagate;
            alias {media}/;
        }}
        location = /_mediagate {{
            internal;
            proxy_pass http://mediagate/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}""")


def start_nginx_accel(tmp: Path, media: Path, mg_port: int):
    """nginx proxying every media request to mediagate in X-Accel-Redirect
    mode, and serving from disk the file it names."""
    return start_nginx_front(tmp, "nginx-accel", mg_port, f"""
        location /media/ {{
            proxy_pass http://mediagate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /_protected/ {{
            internal;
            alias {media}/;
        }}""")


def start_django(tmp: Path, media: Path):
    port = free_port()
    env = dict(os.environ, MEDIA_ROOT=str(media), SIGNING_SECRET="bench-secret-for-django-only")
    here = str(Path(__file__).resolve().parent)
    p = start("django", [VENV / "bin/gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                         "--chdir", here, "--log-level", "warning", "django_view:application"], env=env)
    wait_port(port, timeout=30)

    def sign(path):
        out = subprocess.run([VENV / "bin/python", Path(here) / "django_view.py", path], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        return f"/media{path}?t={out}"

    return p, port, sign


# ---------------------------------------------------------------- wrk

UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def wrk(port, target, seconds, connections=64, headers=(), scheme="http"):
    extra = [arg for h in headers for arg in ("-H", h)]
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", *extra,
         f"{scheme}://127.0.0.1:{port}{target}"],
        capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out)
    bps = float(m.group(1)) * UNITS[m.group(2)] if m else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, bps, int(non2xx.group(1)) if non2xx else 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid):
    """`pid` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def tcp_segments_sent():
    """TCP segments this machine has sent so far (every socket: on
    127.0.0.1 both ends of each connection count)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("OutSegs")])


def cpu_seconds(pid):
    """(user, system) CPU seconds used so far by `pid` and its descendants."""
    user = system = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def peak_rss_during(pid, port, target, seconds, connections, scheme="http"):
    """Runs wrk with `connections` concurrent downloads; samples VmRSS."""
    w = subprocess.Popen(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
                          f"{scheme}://127.0.0.1:{port}{target}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    try:
        while w.poll() is None:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
                peak = max(peak, rss)
            except (OSError, AttributeError):
                pass
            time.sleep(0.05)
    finally:
        if w.poll() is None:
            w.terminate()
        w.wait(timeout=seconds + 30)
    return peak


def tree_rss(pid):
    """Resident bytes of `pid` and its descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
        except (OSError, AttributeError):
            pass
    return total


def read_response(s):
    """Reads one HTTP/1.1 response with a Content-Length off `s`; its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before a response")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def idle_fresh(tmp: Path, media: Path, tls, who: str, mode: str, n: int):
    """Per-connection memory of `n` idle `mode` connections to a server
    `who` started for this measurement alone, then stopped."""
    d = tmp / f"idle-{who}-{mode}"
    d.mkdir()
    if who == "mediagate":
        p, port, tls_port, sign = start_mediagate(d, media, tls)
        target = sign("/small.bin")
        port = tls_port if mode == "tls" else port
        target = target if mode != "h2" else target
    else:
        p, port, tls_port, h2_port = start_nginx(d, media, "1", tls)
        expires = int(time.time()) + 3600
        target = f"/small.bin?md5={nginx_token(expires, '/small.bin')}&expires={expires}"
        port = {"http1": port, "tls": tls_port, "h2": h2_port}[mode]
    try:
        return idle_memory(p.pid, port, target, n, mode)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)


def load_beside_idle(tmp: Path, media: Path, tls, who: str, n: int, seconds: int, rounds: int):
    """The 1 KiB rate (wrk, 64 connections kept alive) of a server `who`
    started for this alone, without and then with `n` idle HTTP/1.1
    keep-alive connections held open beside it (each made one request
    first); then how many of 100 of those idle connections answer a second
    request. Returns (rates without, rates with, answered of 100)."""
    d = tmp / f"beside-{who}"
    d.mkdir()
    if who == "mediagate":
        p, port, _, sign = start_mediagate(d, media, tls)
        target = sign("/small.bin")
    else:
        # Room for the idle connections (4096 in the other rows).
        p, port, _, _ = start_nginx(d, media, "1", tls, connections=n + 1024)
        expires = int(time.time()) + 3600
        target = f"/small.bin?md5={nginx_token(expires, '/small.bin')}&expires={expires}"
    socks = []
    try:
        without = [wrk(port, target, seconds)[0] for _ in range(rounds)]
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(s)
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            if read_response(s) != 200:
                raise RuntimeError(f"{who}: an idle connection's request was refused")
        with_idle = []
        for _ in range(rounds):
            rps, _, non2xx = wrk(port, target, seconds)
            if non2xx:
                raise RuntimeError(f"{who}: {non2xx} refusals beside the idle connections")
            with_idle.append(rps)
        answered = 0
        for s in socks[:: max(len(socks) // 100, 1)][:100]:
            try:
                s.sendall(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                answered += read_response(s) == 200
            except (OSError, RuntimeError):
                pass
        return without, with_idle, answered
    finally:
        for s in socks:
            s.close()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer (RFC 7541, 5.1) with a `prefix_bits`-bit prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = [first | limit], value - limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    return bytes(out + [value])


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_get(s, target):
    """One HTTP/2 GET (prior knowledge) of `target` on a new connection `s`,
    read to its end; the connection stays open. Its status."""
    headers = b""
    for name, value in [(":method", "GET"), (":scheme", "http"), (":path", target),
                        (":authority", "bench")]:
        # A literal header field without indexing, new name (RFC 7541, 6.2.2).
        headers += b"\x00" + hpack_int(len(name), 7) + name.encode()
        headers += hpack_int(len(value), 7) + value.encode()
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0)
              + h2_frame(1, 0x5, 1, headers))
    buf, status = b"", None
    while True:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("HTTP/2 connection closed before the response ended")
            buf += chunk
        n = int.from_bytes(buf[:3], "big")
        kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9:9 + n], buf[9 + n:]
        if kind == 4 and not flags & 1:
            s.sendall(h2_frame(4, 1, 0))  # SETTINGS ack
        if kind == 1 and stream == 1 and status is None:
            # The first field of a response: :status, indexed (8 = 200).
            status = {0x88: 200, 0x89: 204, 0x8d: 404}.get(payload[0], payload[0])
        if stream == 1 and kind in (0, 1) and flags & 1:
            return status


def idle_memory(pid, port, target, n, mode="http1"):
    """Opens `n` keep-alive connections (`mode`: "http1", "h2" with prior
    knowledge, or "tls" for HTTP/1.1 over TLS) that each finish one request
    for `target` and then sit idle, then `n` more the same way, and returns
    the server's resident growth per connection, in bytes, for each batch
    (socket buffers, which are kernel memory, are not in it): the first
    batch's includes what the allocator keeps from their requests, the
    second's what one more idle connection costs a server that holds idle
    ones already. Everything is closed again."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    rss = [tree_rss(pid)]
    socks = []
    try:
        for _batch in range(2):
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                if mode == "tls":
                    s = ctx.wrap_socket(s)
                socks.append(s)
                if mode == "h2":
                    status = h2_get(s, target)
                else:
                    s.sendall(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                    status = read_response(s)
                if status != 200:
                    raise RuntimeError(f"an idle-connection request answered {status}")
            time.sleep(1)
            rss.append(tree_rss(pid))
    finally:
        for s in socks:
            s.close()
    return tuple(max(b - a, 0) / n for a, b in zip(rss, rss[1:]))


# ---------------------------------------------------------------- report

def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}, {nginx_v}"


def fmt(v, unit):
    if unit == "MB/s":
        return f"{v / 1e6:,.0f}"
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--only", help="run only the workloads whose name contains this")
    ap.add_argument("--rounds", type=int, help="rounds per workload (default 3, quick 1)")
    ap.add_argument("--seconds", type=int, help="seconds per wrk run (default 5, quick 1)")
    args = ap.parse_args()
    # wrk's 1000 connections, and the servers' side of them, need descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    seconds, rounds, big_mib = (1, 1, 100) if args.quick else (5, 3, 100)
    if args.quick:
        print("quick mode: a smoke test that the harness runs, not a measurement "
              "(run benches/load/run.sh without --quick to measure)", flush=True)
    seconds = args.seconds or seconds
    rounds = args.rounds or rounds
    partial = args.quick or args.only or args.rounds or args.seconds
    out = Path(args.out) if args.out else (
        ROOT / "target/load/BENCHMARKS.quick.md" if partial else ROOT / "BENCHMARKS.md")
    tmp = Path(tempfile.mkdtemp(prefix="mediagate-load-"))
    tmp.chmod(0o755)  # nginx's workers run as an unprivileged user
    try:
        media = tmp / "media"
        media.mkdir()
        make_fixtures(media, big_mib)
        tls = make_certificate(tmp)
        mg, mg_port, mg_tls, mg_sign = start_mediagate(tmp, media, tls)
        ng1, ng1_port, ng1_tls, ng1_h2 = start_nginx(tmp, media, "1", tls)
        nga, nga_port, nga_tls, _ = start_nginx(tmp, media, "auto", tls)
        dj, dj_port, dj_sign = start_django(tmp, media)
        nau, nau_port = start_nginx_auth(tmp, media, mg_port)
        mgx, mgx_port = start_mediagate_accel(tmp, media, tmp / "keys.toml")
        ngx, ngx_port = start_nginx_accel(tmp, media, mgx_port)

        expires = int(time.time()) + 3600
        def ng(path, signed=None):
            return f"{path}?md5={nginx_token(expires, signed or path)}&expires={expires}"
        seg = "/hls/show/seg-007.ts"
        mg_valid = mg_sign("/small.bin")
        mg_invalid = mg_valid[:-4] + ("AAAA" if not mg_valid.endswith("AAAA") else "BBBB")
        ng_valid = ng("/small.bin")
        ng_invalid = ng_valid.replace("md5=", "md5=AAAA", 1)
        mg_prefix = mg_sign("/hls/show/", prefix=True) + "seg-007.ts"
        workloads = [
            # name, unit, {target: (port, request target)}
            ("valid signed 1 KiB", "req/s", {
                "mediagate": (mg_port, mg_valid), "nginx-1": (ng1_port, ng_valid),
                "nginx-auto": (nga_port, ng_valid), "django": (dj_port, dj_sign("/small.bin"))}),
            ("invalid signature", "req/s", {
                "mediagate": (mg_port, mg_invalid), "nginx-1": (ng1_port, ng_invalid),
                "nginx-auto": (nga_port, ng_invalid)}),
            ("1 MiB file", "MB/s", {
                "mediagate": (mg_port, mg_sign("/1m.bin")), "nginx-1": (ng1_port, ng("/1m.bin")),
                "nginx-auto": (nga_port, ng("/1m.bin"))}),
            ("100 MiB file", "MB/s", {
                "mediagate": (mg_port, mg_sign("/100m.bin")), "nginx-1": (ng1_port, ng("/100m.bin")),
                "nginx-auto": (nga_port, ng("/100m.bin"))}),
            ("HLS segment via prefix link", "req/s", {
                "mediagate": (mg_port, mg_prefix),
                "nginx-1": (ng1_port, ng(seg, "/hls/show/")),
                "nginx-auto": (nga_port, ng(seg, "/hls/show/"))}),
            # HTTPS, kept alive: the same certificate and TLS versions at
            # both; mediagate reads and encrypts file bodies (no sendfile).
            (HTTPS_SMALL, "req/s", {
                "mediagate": (mg_tls, mg_valid, "https"), "nginx-1": (ng1_tls, ng_valid, "https"),
                "nginx-auto": (nga_tls, ng_valid, "https")}),
            (HTTPS_BIG, "MB/s", {
                "mediagate": (mg_tls, mg_sign("/100m.bin"), "https"),
                "nginx-1": (ng1_tls, ng("/100m.bin"), "https"),
                "nginx-auto": (nga_tls, ng("/100m.bin"), "https")}),
            # Not targets: many clients at once (an edge's normal state), and
            # a new connection for every request (clients without keep-alive).
            (MANY_CLIENTS, "req/s", {
                "mediagate": (mg_port, mg_valid), "nginx-1": (ng1_port, ng_valid),
                "nginx-auto": (nga_port, ng_valid)}),
            (NO_KEEPALIVE, "req/s", {
                "mediagate": (mg_port, mg_valid), "nginx-1": (ng1_port, ng_valid),
                "nginx-auto": (nga_port, ng_valid)}),
        ]
        # nginx serving from disk, the link checked by mediagate through
        # auth_request (a subrequest), against nginx's own secure_link: not
        # a mediagate row, reported in a table of its own.
        proxied = [(AUTH_REQUEST, "req/s", {
            "nginx-1": (ng1_port, ng_valid), "nginx-auth": (nau_port, mg_valid),
            "nginx-accel": (ngx_port, mg_valid)})]
        if args.only:
            workloads = [w for w in workloads if args.only in w[0]]
            proxied = [w for w in proxied if args.only in w[0]]
        # Sanity: every valid target answers 200 and every invalid one 403.
        for name, _, targets in workloads + proxied:
            for who, (port, target, *scheme) in targets.items():
                status = http_status(port, target, *scheme)
                want = 403 if name == "invalid signature" else 200
                if status != want:
                    raise RuntimeError(f"{who} answered {status} for {name} ({target})")

        pids = {"mediagate": mg.pid, "nginx-1": ng1.pid, "nginx-auto": nga.pid, "django": dj.pid,
                "nginx-auth": nau.pid, "nginx-accel": ngx.pid}
        results, cpu = {}, {}
        rss_seconds = 3 if partial else 10
        big = mg_sign("/100m.bin")
        peak = None
        for name, unit, targets in workloads + proxied:
            if name in (MANY_CLIENTS, NO_KEEPALIVE) and peak is None:
                # Before the 1000 clients, whose buffers the allocator keeps.
                peak = peak_rss_during(mg.pid, mg_port, big, rss_seconds, 256)
            for r in range(rounds):
                order = list(targets.items())
                if r % 2:
                    order.reverse()  # alternate A/B
                for who, (port, target, *scheme) in order:
                    u0, s0 = cpu_seconds(pids[who])
                    w0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = tcp_segments_sent()
                    connections = 1000 if name == MANY_CLIENTS else 64
                    headers = ("Connection: close",) if name == NO_KEEPALIVE else ()
                    rps, bps, _ = wrk(port, target, seconds, connections, headers, *scheme)
                    w1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    u1, s1 = cpu_seconds(pids[who])
                    segments = tcp_segments_sent() - t0
                    value = bps if unit == "MB/s" else rps
                    results.setdefault((name, who), []).append(value)
                    # CPU per request, or per MiB sent for the throughput workloads.
                    requests = (max(bps * seconds / (1 << 20), 1e-9) if unit == "MB/s"
                                else max(rps * seconds, 1))
                    wrk_cpu = (w1.ru_utime - w0.ru_utime) + (w1.ru_stime - w0.ru_stime)
                    cpu.setdefault((name, who), []).append(
                        ((u1 - u0) / requests * 1e6, (s1 - s0) / requests * 1e6,
                         wrk_cpu / requests * 1e6, segments / requests))
                    print(f"{name:<30} {who:<11} {fmt(value, unit):>12} {unit}", flush=True)

        if peak is None:
            peak = peak_rss_during(mg.pid, mg_port, big, rss_seconds, 256)
        print(f"mediagate peak RSS with 256 concurrent 100 MiB downloads: {peak / (1 << 20):.1f} MiB")
        peak_tls = None
        if not args.only or "HTTPS" in args.only:
            peak_tls = peak_rss_during(mg.pid, mg_tls, big, rss_seconds, 256, "https")
            print(f"... over HTTPS: {peak_tls / (1 << 20):.1f} MiB")
        # Idle keep-alive connections (issue #29): each server in turn, with
        # one 1 KiB request on each connection first.
        idle_n = 200 if args.quick else 3000
        idle = {}
        if not args.only or "idle" in args.only:
            # Each server's own fresh connections, one kind after another;
            # a server's allocator keeps what the kind before freed, so each
            # kind goes to servers started for it alone.
            for mode in ("http1", "h2", "tls"):
                for who in ("mediagate", "nginx-1"):
                    idle[(mode, who)] = idle_fresh(tmp, media, tls, who, mode, idle_n)
                    first, more = idle[(mode, who)]
                    print(f"{idle_n} idle {mode} connections: {who} {first / 1024:.2f} KiB each, "
                          f"{idle_n} more {more / 1024:.2f} KiB each", flush=True)
        # Load on a few connections while many more sit idle (issue #29):
        # as many idle ones as mediagate's default cap allows here (it
        # follows the open-files limit; see BENCHMARKS.md).
        beside_n = 200 if args.quick else 9000
        beside = {}
        if not args.only or "beside" in args.only:
            for who in ("mediagate", "nginx-1"):
                beside[who] = load_beside_idle(tmp, media, tls, who, beside_n, seconds, rounds)
                without, with_idle, answered = beside[who]
                print(f"1 KiB beside {beside_n} idle connections: {who} "
                      f"{statistics.median(without):,.0f} -> {statistics.median(with_idle):,.0f} "
                      f"req/s; {answered} of 100 idle ones answered again", flush=True)
        uploads = None
        if not args.only or "upload" in args.only:
            uploads = upload_rows(tmp, seconds, rounds, args.quick)
        report(out, results, cpu, workloads, (peak, peak_tls), seconds, rounds, args.quick,
               (idle_n, idle), proxied, uploads, (beside_n, beside))
        print(f"report written to {out}")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


AUTH_REQUEST = "valid 1 KiB, nginx in front"
HTTPS_SMALL = "HTTPS valid 1 KiB"
HTTPS_BIG = "HTTPS 100 MiB file"
MANY_CLIENTS = "valid 1 KiB, 1000 connections"
NO_KEEPALIVE = "valid 1 KiB, a connection per request"

TARGETS = {
    "valid signed 1 KiB": 1.2,
    "invalid signature": 1.5,
    "100 MiB file": 1.0,
    HTTPS_SMALL: 1.0,
    HTTPS_BIG: 0.9,
}


def report(out, results, cpu, workloads, peak, seconds, rounds, quick, idle=(0, {}), proxied=(),
           uploads=None, beside=(0, {})):
    med = {k: statistics.median(v) for k, v in results.items()}
    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `benches/load/run.sh{' --quick' if quick else ''}` on "
        f"{machine()}.",
        f"wrk -t2 -c64 (-c1000 for the many-clients row; `Connection: close` for the connection-per-request row), {seconds} s per run, {rounds} round(s) per target, targets alternated; "
        "every server on 127.0.0.1 of the same machine (so the load generator shares the 2 cores). "
        "Absolute numbers drift between runs on shared machines; compare the ratios.",
        "",
        "| workload | unit | mediagate (median, min-max) | nginx 1 worker | nginx auto | django | "
        "mediagate / best nginx | mediagate / django |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for name, unit, targets in workloads:
        cells = []
        for who in ["mediagate", "nginx-1", "nginx-auto", "django"]:
            vals = results.get((name, who))
            if not vals:
                cells.append("-")
                continue
            cells.append(f"{fmt(statistics.median(vals), unit)} ({fmt(min(vals), unit)}-{fmt(max(vals), unit)})")
        mgv = med[(name, "mediagate")]
        best_ng = max(med[(name, "nginx-1")], med[(name, "nginx-auto")])
        r_ng = mgv / best_ng if best_ng else 0
        dj = med.get((name, "django"))
        r_dj = f"{mgv / dj:.1f}x" if dj else "-"
        lines.append(f"| {name} | {unit} | " + " | ".join(cells) + f" | {r_ng:.2f}x | {r_dj} |")
        if name in TARGETS:
            verdicts.append((f"{name}: >= {TARGETS[name]}x best nginx", r_ng >= TARGETS[name], f"{r_ng:.2f}x"))
        if dj:
            verdicts.append(("valid 1 KiB: >= 15x the Django view", mgv / dj >= 15, f"{mgv / dj:.1f}x"))
    for name, unit, targets in proxied:
        alone = results.get((name, "nginx-1"))
        if not alone:
            continue
        a = statistics.median(alone)
        lines += ["", "nginx in front, serving the file from its disk (one nginx worker each): "
                  "the link checked by nginx's own `secure_link` (MD5); by mediagate through "
                  "`auth_request` (a subrequest to `auth_path`); or by mediagate in "
                  "`accel_redirect` mode (every request proxied to it, the file then named in "
                  "`X-Accel-Redirect`). Upstreams kept alive.", "",
                  "| workload | unit | checked by | median (min-max) | secure_link / this |",
                  "|---|---|---|---|---|"]
        for who, label in [("nginx-1", "nginx secure_link"),
                           ("nginx-auth", "mediagate via auth_request"),
                           ("nginx-accel", "mediagate via X-Accel-Redirect")]:
            vals = results.get((name, who))
            if not vals:
                continue
            m = statistics.median(vals)
            lines.append(f"| {name} | {unit} | {label} | {fmt(m, unit)} ({fmt(min(vals), unit)}-"
                         f"{fmt(max(vals), unit)}) | {a / m:.2f}x |")
        checked = results.get((name, "nginx-auth"))
        if checked:
            c = statistics.median(checked)
            verdicts.append(("nginx auth_request to mediagate: < 2x slower than secure_link alone",
                             a / c < 2, f"{a / c:.2f}x"))
    peak, peak_tls = peak
    verdicts.append(("peak RSS <= 64 MiB during 256 concurrent 100 MiB downloads", peak <= 64 << 20,
                     f"{peak / (1 << 20):.1f} MiB"))
    if peak_tls is not None:
        verdicts.append(("... the same over HTTPS (bounded memory)", peak_tls <= 64 << 20,
                         f"{peak_tls / (1 << 20):.1f} MiB"))
    lines += ["", "CPU (median over runs, microseconds) per request, or per MiB sent for the "
              "throughput workloads: the server's user and kernel time (from /proc, its whole "
              "process tree) and the load generator's (wrk, from rusage). Both share the 2 cores, "
              "so the rate is about 2 cores / (server + wrk). TCP segments: sent by both ends "
              "(the machine's count), per request or MiB.", "",
              "| workload | per | server | server user | server kernel | server total | wrk "
              "| TCP segments |",
              "|---|---|---|---|---|---|---|---|"]
    for name, unit, targets in workloads:
        per = "MiB" if unit == "MB/s" else "request"
        for who in targets:
            samples = cpu.get((name, who))
            if samples:
                u = statistics.median(x[0] for x in samples)
                k = statistics.median(x[1] for x in samples)
                w = statistics.median(x[2] for x in samples)
                t = statistics.median(x[3] for x in samples)
                lines.append(f"| {name} | {per} | {who} | {u:.2f} | {k:.2f} | {u + k:.2f} "
                             f"| {w:.2f} | {t:.2f} |")
    idle_n, idle_bytes = idle
    if idle_bytes:
        lines += ["", f"Memory of idle keep-alive connections: {idle_n} connections that each "
                  "finished one 1 KiB request, to a server started for that kind alone, then "
                  f"{idle_n} more: its resident growth (its whole process tree; socket buffers "
                  "are kernel memory and not in it) per connection, in KiB, for the first batch "
                  "(with what the allocator keeps from serving them) and for the second (what one "
                  "more idle connection costs a server that holds idle ones already):", "",
                  "| connections | mediagate first | nginx first | mediagate more | nginx more |",
                  "|---|---|---|---|---|"]
        for mode, label in [("http1", "HTTP/1.1"), ("h2", "HTTP/2 (prior knowledge)"),
                            ("tls", "HTTP/1.1 over TLS")]:
            mg, ng = idle_bytes.get((mode, "mediagate")), idle_bytes.get((mode, "nginx-1"))
            if mg is None or ng is None:
                continue
            lines.append(f"| {label} | {mg[0] / 1024:.2f} | {ng[0] / 1024:.2f} | "
                         f"{mg[1] / 1024:.2f} | {ng[1] / 1024:.2f} |")
        h1 = idle_bytes.get(("http1", "mediagate"))
        if h1 is not None:
            verdicts.append(("idle HTTP/1.1 keep-alive connection: <= 4 KiB (first batch)",
                             h1[0] <= 4096, f"{h1[0] / 1024:.2f} KiB"))
            verdicts.append(("idle HTTP/1.1 keep-alive connection: <= 4 KiB (one more)",
                             h1[1] <= 4096, f"{h1[1] / 1024:.2f} KiB"))
    beside_n, beside_rates = beside
    if beside_rates:
        lines += ["", f"Load beside idle connections: the 1 KiB rate (wrk, 64 connections kept "
                  f"alive; req/s, median) of a server started for this alone, before and while "
                  f"{beside_n:,} idle HTTP/1.1 keep-alive connections (each made one request) are "
                  "held open beside it; then a second request on 100 of the idle ones:", "",
                  "| server | without | with idle | with / without | idle ones answering |",
                  "|---|---|---|---|---|"]
        for who, (without, with_idle, answered) in beside_rates.items():
            a, b = statistics.median(without), statistics.median(with_idle)
            lines.append(f"| {who} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {answered} of 100 |")
    if uploads:
        up, up_peak = uploads
        med_up = {who: statistics.median(v) for who, v in up.items()}
        ng = med_up.get("nginx dav_methods PUT")
        lines += ["", f"Uploads: {UPLOAD_MIB} MiB `PUT`s by wrk, 4 at once, to one name "
                  "(replaced each time), each server writing into a root of its own on the same "
                  "file system; MiB uploaded per second, median (min-max) over the rounds. nginx "
                  "(`dav_methods PUT`, one worker, the link checked by `secure_link`) has no "
                  "setting to fsync an upload: its row is without, and mediagate without fsync is "
                  "the like-for-like comparison.", "",
                  "| server | MiB/s | / nginx |", "|---|---|---|"]
        for who, vals in up.items():
            m = med_up[who]
            ratio = f"{m / ng:.2f}x" if ng else "-"
            lines.append(f"| {who} | {m:.1f} ({min(vals):.1f}-{max(vals):.1f}) | {ratio} |")
        if ng:
            verdicts.append(("100 MiB PUT, no fsync: >= 1.0x nginx dav_methods PUT",
                             med_up["mediagate, no fsync"] / ng >= 1.0,
                             f"{med_up['mediagate, no fsync'] / ng:.2f}x"))
        verdicts.append(("peak RSS <= 64 MiB during 64 concurrent 100 MiB uploads",
                         up_peak <= 64 << 20, f"{up_peak / (1 << 20):.1f} MiB"))
    if quick:
        # One short round on a machine also running the load generator:
        # the figures only show that every server answered.
        lines += ["", "Quick mode: a smoke test that the harness runs, not a measurement; "
                  "no target is judged. Run `benches/load/run.sh` without `--quick` to measure."]
    else:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        for what, ok, measured in verdicts:
            lines.append(f"| {what} | {measured} | {'yes' if ok else 'NO'} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = out.read_text() if out.exists() and out.name == "BENCHMARKS.md" else ""
    marker = "<!-- measured results above; analysis below is kept across runs -->"
    tail = existing.split(marker, 1)[1] if marker in existing else "\n"
    out.write_text("\n".join(lines) + "\n\n" + marker + tail)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
    except Exception as e:  # one line, non-zero, and everything stopped
        stop_all()
        print(f"load harness: error: {e}", file=sys.stderr)
        sys.exit(1)
