//! The `mediagate` command, run as a built binary.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::{
    Caddy, Nginx, Served, bin, keys_and_media, lines_on_a_thread, readable_to_all, run, sign_for_7,
    start_server, stop, within,
};

/// One HTTP/1.1 GET over a fresh connection; the whole response.
fn http_get(addr: &str, target: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut res = String::new();
    s.read_to_string(&mut res).unwrap();
    res
}

/// One HTTP/1.1 request over a fresh connection, with extra header lines;
/// the whole response.
fn http_request(addr: &str, method: &str, target: &str, headers: &[&str]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut res = String::new();
    s.read_to_string(&mut res).unwrap();
    res
}

/// A link for user 7 to /a.txt below `base`, signed by the CLI.
fn sign_a_txt(keys: &str, base: &str) -> String {
    sign_for_7(keys, &["--path", "/a.txt", "--base-url", base])
}

/// A link for user 7 to `/a.txt` that expired an hour ago (past any leeway).
fn expired_a_txt(keys: &str, base: &str) -> String {
    use mediagate_signer::time::{Duration as Span, OffsetDateTime};
    let access = mediagate_signer::keys::KeysFileAccess::default();
    let ring = mediagate_signer::keys::load_keyring_file(std::path::Path::new(keys), access)
        .expect("the test's keys");
    let signer = mediagate_signer::Signer::new(ring);
    let hour_ago = OffsetDateTime::now_utc() - Span::hours(1);
    let link = signer
        .link("7", "/a.txt")
        .issued_at(hour_ago)
        .ttl(Span::minutes(1));
    link.url(base).expect("a valid link")
}

/// `mediagate serve` with `keys` and `root`, on a free port of 127.0.0.1;
/// tests add their options.
fn serve_cmd(keys: &str, root: &std::path::Path) -> Command {
    let mut cmd = bin();
    cmd.args(["serve", "--keys", keys, "--root", root.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"]);
    cmd
}

/// Sends `request` to `addr` from 127.0.0.2 (as a load balancer would);
/// the whole response.
fn from_balancer(addr: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = socket.connect(addr.parse().unwrap()).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut res = String::new();
        s.read_to_string(&mut res).await.unwrap();
        res
    })
}

/// An HTTP/2 GET (prior knowledge) of `target` from a client whose
/// streams start with a flow-control window of zero: the server may send
/// the response head, never its body. The connection, not read from.
fn http2_get_with_closed_window(addr: &str, target: &str) -> std::net::TcpStream {
    http2_gets_with_closed_window(addr, &[target])
}

/// [`http2_get_with_closed_window`] for several targets at once, one
/// stream each.
fn http2_gets_with_closed_window(addr: &str, targets: &[&str]) -> std::net::TcpStream {
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }
    // A header field as an HPACK literal without indexing, its name new
    // (RFC 7541 §6.2.2); string lengths are 7-bit-prefix integers.
    fn literal(name: &str, value: &str) -> Vec<u8> {
        let mut out = vec![0];
        for s in [name, value] {
            let mut n = s.len();
            if n < 127 {
                out.push(n as u8);
            } else {
                out.push(127);
                n -= 127;
                while n >= 128 {
                    out.push((n % 128) as u8 | 0x80);
                    n /= 128;
                }
                out.push(n as u8);
            }
            out.extend(s.as_bytes());
        }
        out
    }
    const SETTINGS: u8 = 4;
    const HEADERS: u8 = 1;
    const END_STREAM_AND_HEADERS: u8 = 0x5;
    const INITIAL_WINDOW_SIZE: u16 = 4;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let mut zero_window = INITIAL_WINDOW_SIZE.to_be_bytes().to_vec();
    zero_window.extend(0u32.to_be_bytes());
    hello.extend(frame(SETTINGS, 0, 0, &zero_window));
    for (i, target) in targets.iter().enumerate() {
        let mut head = Vec::new();
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "x"),
            (":path", target),
        ] {
            head.extend(literal(name, value));
        }
        let stream = 2 * i as u32 + 1;
        hello.extend(frame(HEADERS, END_STREAM_AND_HEADERS, stream, &head));
    }
    s.write_all(&hello).unwrap();
    s
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = run(args);
    assert_ne!(code, 0, "{args:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    // Each cause once (a source that the message already names is not
    // repeated).
    assert_eq!(err.matches(needle).count(), 1, "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
}

#[test]
fn keygen_creates_a_private_file_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let k = keys.to_str().unwrap();
    assert_eq!(run(&["keygen", "--out", k, "--id", "first"]).0, 0);
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(run(&["keygen", "--out", k, "--id", "second"]).0, 0);
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(text.contains("active = \"second\""));
    assert!(text.contains("id = \"first\""));
    assert_one_line_error(
        &["keygen", "--out", k, "--id", "second"],
        "already has a key \"second\": choose another --id",
    );
    // Default ids are unique even for keys made in the same second.
    for _ in 0..3 {
        assert_eq!(run(&["keygen", "--out", k]).0, 0);
    }
    let text = std::fs::read_to_string(&keys).unwrap();
    assert_eq!(text.matches("[[keys]]").count(), 5, "{text}");
    assert_one_line_error(&["keygen", "--out", k, "--id", "bad id"], "key id");
    // A file that cannot be written is named as given, and nothing is left.
    let missing = dir.path().join("no-such-dir").join("keys.toml");
    let m = missing.to_str().unwrap();
    assert_one_line_error(&["keygen", "--out", m], &format!("cannot write {m}"));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only keys.toml: {left:?}");
}

#[test]
fn sign_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let k = keys.to_str().unwrap();
    run(&["keygen", "--out", k, "--id", "cli"]);
    let (code, url, err) = run(&[
        "sign",
        "--keys",
        k,
        "--user",
        "42",
        "--path",
        "/videos/a b.mp4",
        "--ttl",
        "5m",
        "--base-url",
        "https://m.example/media",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        url.starts_with("https://m.example/media/videos/a%20b.mp4?mg_token="),
        "{url}"
    );
    let (code, out, _) = run(&["inspect", url.trim(), "--keys", k]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("user:        42")
            && out.contains("VALID now for GET /videos/a b.mp4 (below the mount /media)"),
        "{out}"
    );
    // From stdin, so that a live link stays out of `ps` and shell history.
    let mut child = bin()
        .args(["inspect", "-", "--keys", k])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(url.as_bytes())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(0));
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(
        piped.contains("VALID now for GET /videos/a b.mp4 (below the mount /media)"),
        "{piped}"
    );
    // Without keys: the claims, and a note that the signature is unchecked.
    let (code, out, _) = run(&["inspect", url.trim()]);
    assert_eq!(code, 0);
    assert!(out.contains("not checked"));
    // A wrong path is explained.
    let wrong = url.trim().replace("a%20b.mp4", "other.mp4");
    let (code, out, _) = run(&["inspect", &wrong, "--keys", k]);
    assert_eq!(code, 1);
    assert!(out.contains("wrong path"), "{out}");
    // Path form and prefix.
    let (_, url, _) = run(&[
        "sign", "--keys", k, "--user", "1", "--path", "/hls", "--prefix", "--form", "path",
    ]);
    assert!(
        url.starts_with("/_mg/") && url.trim_end().ends_with("/hls/"),
        "{url}"
    );
    // The cookie's path is the mount's, whether the base is a URL or a path.
    for base in ["https://x/media", "/media"] {
        let (_, cookie, _) = run(&[
            "sign",
            "--keys",
            k,
            "--user",
            "1",
            "--path",
            "/a",
            "--form",
            "cookie",
            "--base-url",
            base,
        ]);
        assert!(
            cookie.starts_with("Set-Cookie: mg_token=") && cookie.contains("Path=/media/a;"),
            "{base}: {cookie}"
        );
    }
    // What `sign --form cookie` prints, or its value, or the token as a
    // Cookie header or query string carries it: each is inspected.
    let set_cookie = sign_for_7(k, &["--path", "/a.txt", "--form", "cookie"]);
    let token = set_cookie
        .split("mg_token=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    for pasted in [
        set_cookie.clone(),
        set_cookie.trim_start_matches("Set-Cookie: ").to_owned(),
        format!("Cookie: theme=dark; mg_token={token}"),
        format!("mg_token={token}"),
        format!("?page=2&mg_token={token}"),
    ] {
        let (code, out, err) = run(&["inspect", &pasted, "--keys", k]);
        assert_eq!(code, 0, "{pasted}: {err}");
        assert!(out.contains("VALID now for GET /a.txt"), "{pasted}: {out}");
    }
    for (pasted, needle) in [
        ("Cookie: theme=dark", "no mg_token cookie in that header"),
        (
            "Set-Cookie: theme=dark; Path=/",
            "that Set-Cookie does not set mg_token",
        ),
        ("?page=2", "no mg_token in that query"),
    ] {
        assert_one_line_error(&["inspect", pasted], needle);
    }
    // Keys from the environment.
    let out = bin()
        .args(["sign", "--user", "1", "--path", "/a"])
        .env(
            "MEDIAGATE_KEYS",
            "env:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sign` reaches every claim of the format, `inspect` shows each, and the
/// server acts on them.
#[test]
fn sign_sets_every_claim_and_the_server_honours_them() {
    let (_dir, keys, root) = keys_and_media("a pdf, really\n");
    let k = keys.as_str();
    let sign = |extra: &[&str]| sign_for_7(k, &[&["--base-url", "/media"], extra].concat());
    let full = sign(&[
        "--path",
        "/a.txt",
        "--inline",
        "Ré port.pdf",
        "--content-type",
        "application/pdf",
        "--generation",
        "42",
        "--methods",
        "get,HEAD,PUT",
        "--ttl",
        "1h",
    ]);
    let (code, out, _) = run(&["inspect", &full, "--keys", k]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "methods:     GET, HEAD, PUT",
        "disposition: inline; filename=\"R_ port.pdf\"; filename*=UTF-8''R%C3%A9%20port.pdf",
        "type:        application/pdf",
        "generation:  42",
        "VALID now",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    // A start time, as a delay or in RFC 3339; inspect shows RFC 3339.
    let later = sign(&["--path", "/a.txt", "--not-before", "30m", "--ttl", "2h"]);
    let (code, out, _) = run(&["inspect", &later, "--keys", k]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not valid yet: it starts in 29 min"), "{out}");
    let nbf = out
        .lines()
        .find_map(|l| l.strip_prefix("not before:  "))
        .and_then(|l| l.split(' ').next())
        .unwrap();
    assert!(nbf.ends_with('Z') && nbf.contains('T'), "{nbf}");
    let again = sign(&["--path", "/a.txt", "--not-before", nbf, "--ttl", "2h"]);
    let (_, out_again, _) = run(&["inspect", &again]);
    assert!(
        out_again.contains(&format!("not before:  {nbf} ")),
        "{out_again}"
    );
    let head_only = sign(&["--path", "/a.txt", "--methods", "HEAD"]);

    let mut cmd = serve_cmd(k, &root);
    cmd.args(["--mount", "/media"]);
    let (child, _lines, addr) = start_server(cmd);
    let res = http_get(&addr, &full);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let head = res.to_ascii_lowercase();
    assert!(head.contains("content-type: application/pdf\r\n"), "{res}");
    assert!(
        head.contains("content-disposition: inline; filename=\"r_ port.pdf\""),
        "{res}"
    );
    let res = http_get(&addr, &later);
    assert!(
        res.starts_with("HTTP/1.1 403") && res.ends_with("not_yet_valid\n"),
        "{res}"
    );
    let res = http_get(&addr, &head_only);
    assert!(res.ends_with("method\n"), "{res}");
    let res = http_request(&addr, "HEAD", &head_only, &[]);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    stop(child);

    for (args, needle) in [
        (
            &["--methods", "POST"][..],
            "'POST' is not one of GET, HEAD, PUT",
        ),
        (&["--methods", ""], "is not one of"),
        (&["--not-before", "tomorrow"], "is not a time like"),
        (
            &["--not-before", "2h", "--ttl", "1h"],
            "not-before must be earlier",
        ),
        (
            &["--attachment", "a", "--inline", "b"],
            "cannot be used with",
        ),
        (
            &["--content-type", "text/html\r\nx: y"],
            "content type must",
        ),
        (&["--generation", "x"], "--generation"),
    ] {
        let mut all = vec!["sign", "--keys", k, "--user", "1", "--path", "/a"];
        all.extend_from_slice(args);
        assert_one_line_error(&all, needle);
    }
}

#[test]
fn expired_links_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let k = keys.to_str().unwrap();
    run(&["keygen", "--out", k, "--id", "cli"]);
    let (_, url, _) = run(&[
        "sign", "--keys", k, "--user", "1", "--path", "/a", "--ttl", "1s",
    ]);
    std::thread::sleep(Duration::from_millis(2100));
    // The verifier's leeway is 30 s, so the link still passes; the claims
    // show it as expired all the same.
    let (_, out, _) = run(&["inspect", url.trim()]);
    assert!(out.contains("expires:") && out.contains("ago"), "{out}");
    // With the keys, the verdict says why it still passes...
    let (code, out, _) = run(&["inspect", url.trim(), "--keys", k]);
    assert_eq!(code, 0, "{out}");
    let verdict = out.lines().find(|l| l.starts_with("verdict:")).unwrap();
    assert!(
        verdict.contains("VALID (expired ")
            && verdict.contains(" s ago, accepted within the 30 s leeway)"),
        "{verdict}"
    );
    // ...and with the server's leeway set lower, that it does not.
    let (code, out, _) = run(&["inspect", url.trim(), "--keys", k, "--leeway", "1s"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INVALID: expired"), "{out}");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let k = keys.to_str().unwrap();
    assert_one_line_error(&["sign", "--user", "1", "--path", "/a"], "no keys");
    // Clap's errors keep what they are about on the one line.
    assert_one_line_error(&["sign", "--path", "/a"], "not provided: --user <USER>");
    assert_one_line_error(&["sign", "--bogus"], "unexpected argument '--bogus'");
    assert_one_line_error(
        &[
            "sign",
            "--keys",
            "/nonexistent/keys.toml",
            "--user",
            "1",
            "--path",
            "/a",
        ],
        "cannot read keys file",
    );
    run(&["keygen", "--out", k]);
    let sign = |extra: &[&str]| {
        let mut args = vec!["sign", "--keys", k, "--user", "1", "--path", "/a"];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let check = |extra: &[&str], needle: &str| {
        let args = sign(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_one_line_error(&refs, needle);
    };
    check(&["--ttl", "10x"], "duration");
    check(&["--ttl", "0s"], "positive");
    check(&["--ttl", "999999999999999d"], "at most 100 years");
    check(&["--not-before", "3000000000d"], "at most 100 years");
    check(&["--ttl", "30d"], "lifetime");
    check(&["--ip", "nope"], "--ip");
    check(&["--base-url", "https://x/y?z=1"], "--base-url");
    check(&["--base-url", "media"], "--base-url");
    assert_one_line_error(
        &["sign", "--keys", k, "--user", "1", "--path", "/a/../b"],
        "dot segment",
    );
    assert_one_line_error(
        &["sign", "--keys", k, "--user", "a b", "--path", "/a"],
        "user id",
    );
    let short = dir.path().join("short.toml");
    write_private(
        &short,
        "active = \"a\"\n[[keys]]\nid = \"a\"\nsecret = \"c2hvcnQ\"\n",
    );
    // Which key of several is at fault is named, by its line.
    assert_one_line_error(
        &[
            "sign",
            "--keys",
            short.to_str().unwrap(),
            "--user",
            "1",
            "--path",
            "/a",
        ],
        "line 4, secret: key secret is 5 bytes; at least 32",
    );
    assert_one_line_error(
        &["serve", "--keys", k, "--root", "/nonexistent/media"],
        "(os error 2)",
    );
    let empty = dir.path().join("empty.toml");
    write_private(&empty, "");
    let e = empty.to_str().unwrap();
    assert_one_line_error(
        &["sign", "--keys", e, "--user", "1", "--path", "/a"],
        "missing field `active`",
    );
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    assert_one_line_error(
        &["serve", "--keys", k, "--root", file.to_str().unwrap()],
        "not a directory",
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    assert_one_line_error(
        &[
            "serve",
            "--keys",
            k,
            "--root",
            dir.path().to_str().unwrap(),
            "--listen",
            &addr,
        ],
        "cannot listen",
    );
    assert_one_line_error(
        &[
            "serve",
            "--keys",
            k,
            "--root",
            dir.path().to_str().unwrap(),
            "--workers",
            "0",
        ],
        "workers: must be at least 1",
    );
    // Host names are not looked up; a port alone is not an address.
    for listen in ["localhost:8080", "8080", "127.0.0.1:99999"] {
        assert_one_line_error(
            &["serve", "--keys", k, "--root", "/tmp", "--listen", listen],
            "not an IP address and port, such as 127.0.0.1:8080",
        );
    }
    // A device that never ends is not read until memory runs out.
    assert_one_line_error(
        &["serve", "--config", "/dev/zero"],
        "larger than 1 MiB, not a config file",
    );
    assert_one_line_error(
        &["keygen", "--out", "/dev/zero"],
        "larger than 1 MiB, not a keys file",
    );
    assert_one_line_error(&["inspect", "not-a-token"], "not a mediagate link");
    assert_one_line_error(&["frobnicate"], "frobnicate");
}

#[test]
fn serve_answers_and_stops_on_sigterm() {
    let (_dir, keys, root) = keys_and_media("served by the binary\n");
    let k = keys.as_str();
    let mut cmd = serve_cmd(k, &root);
    cmd.args(["--mount", "/media"]);
    let (child, lines, addr) = start_server(cmd);
    let url = sign_a_txt(k, "/media");
    let res = http_get(&addr, url.trim());
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("served by the binary\n"));
    let token = url.trim().split("mg_token=").nth(1).unwrap().to_owned();
    stop(child);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    // The access log names the user, never the token.
    let log = rest.join("\n");
    assert!(log.contains("user=\"7\""), "{log}");
    assert!(log.contains("client=127.0.0.1 "), "{log}");
    assert!(log.contains("micros="), "the line times the request: {log}");
    assert!(!log.contains(&token));
    assert!(log.contains("stopped"));
}

/// The server runs without transparent huge pages (see `main.rs`): a
/// huge page counts whole once a byte of it is written, which would
/// inflate what each idle connection costs.
#[test]
fn serve_turns_transparent_huge_pages_off() {
    let (_dir, keys, root) = keys_and_media("served by the binary\n");
    let (child, _lines, _addr) = start_server(serve_cmd(&keys, &root));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    // `THP_enabled` is in /proc since Linux 5.0.
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .expect("a kernel that reports THP_enabled");
    assert_eq!(thp.trim(), "0", "{status}");
    stop(child);
}

/// A log reader that stops reading (a full pipe: a stalled log shipper)
/// never stops the server: lines wait in a queue, and arrive when the
/// reader is back.
#[test]
fn serve_keeps_answering_while_its_log_reader_stalls() {
    let (_dir, keys, root) = keys_and_media("served by the binary\n");
    let k = keys.as_str();
    let (child, lines, addr) = start_server(serve_cmd(k, &root));
    let url = sign_a_txt(k, "");
    // About 200 bytes of log a request: ten times what a pipe holds. A
    // server that wrote its log in the request's path would stop at
    // about the 300th, and the next read would time out.
    const REQUESTS: usize = 3000;
    for i in 0..REQUESTS {
        let res = http_get(&addr, &url);
        assert!(res.starts_with("HTTP/1.1 200"), "request {i}: {res}");
    }
    // The reader comes back: every line is there.
    let reader = std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .filter(|line| line.contains("status=200"))
            .count()
    });
    stop(child);
    assert_eq!(reader.join().unwrap(), REQUESTS);
}

/// A download cut short is logged with the bytes that really went out and
/// why it ended: a client that stops reading (send timeout), one that
/// leaves, a file that shrinks while it is sent; a whole download once
/// its last byte has gone out. With sendfile and without.
#[test]
fn serve_logs_why_a_download_was_cut_short() {
    const MIB: u64 = 1 << 20;
    const SIZE: u64 = 64 * MIB;
    for sendfile in [true, false] {
        let (dir, keys, root) = keys_and_media("x");
        let big = root.join("big.bin");
        std::fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
        let config = dir.path().join("mediagate.toml");
        std::fs::write(
            &config,
            format!(
                "keys = {keys:?}\nroot = {:?}\nlisten = \"127.0.0.1:0\"\n\
                 send_timeout = \"1s\"\nsendfile = {sendfile}\n",
                root.to_str().unwrap()
            ),
        )
        .unwrap();
        let mut cmd = bin();
        cmd.env("MEDIAGATE_LOG_FORMAT", "json").args([
            "serve",
            "--config",
            config.to_str().unwrap(),
        ]);
        let mut child = Served(cmd.stderr(Stdio::piped()).spawn().unwrap());
        let stderr = BufReader::new(child.0.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let wait = Duration::from_secs(20);
        let addr = loop {
            let line = rx.recv_timeout(wait).expect("the server starts");
            if line["message"] == "serving" {
                break line["addr"].as_str().unwrap().to_owned();
            }
        };
        let next_access = || loop {
            let line = rx.recv_timeout(wait).expect("an access line");
            if line["target"] == "mediagate::access" {
                break line;
            }
        };
        let url = sign_for_7(&keys, &["--path", "/big.bin"]);
        let open = || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(
                s,
                "GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            s
        };
        let bytes = |line: &serde_json::Value| line["bytes"].as_u64().unwrap();
        let case = format!("sendfile = {sendfile}");

        // Read whole: logged once the last byte is out, nothing missing.
        let mut whole = Vec::new();
        open().read_to_end(&mut whole).unwrap();
        assert!(whole.len() as u64 > SIZE, "{case}");
        let line = next_access();
        assert_eq!(
            (bytes(&line), &line["error"]),
            (SIZE, &"-".into()),
            "{case}: {line}"
        );

        // Not read at all: the send timeout cuts it.
        let stalled = open();
        let line = next_access();
        assert_eq!(line["error"], "send timeout", "{case}: {line}");
        assert!((1..SIZE).contains(&bytes(&line)), "{case}: {line}");
        drop(stalled);

        // Read a little, then gone.
        let mut leaving = open();
        leaving.read_exact(&mut vec![0; MIB as usize]).unwrap();
        drop(leaving);
        let line = next_access();
        assert_eq!(line["error"], "client went away", "{case}: {line}");
        assert!((MIB..SIZE).contains(&bytes(&line)), "{case}: {line}");

        // Over HTTP/2, a stream whose window the client never opens: the
        // server's watch cuts it at the send timeout.
        if sendfile {
            let stalled = http2_get_with_closed_window(&addr, &url);
            let line = next_access();
            assert_eq!(line["error"], "send timeout", "HTTP/2: {line}");
            drop(stalled);
        }

        // The file shrinks to half beyond what can be in flight: the
        // response stops there, and says why.
        let mut reader = open();
        reader.read_exact(&mut vec![0; MIB as usize]).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(SIZE / 2)
            .unwrap();
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let line = next_access();
        assert_eq!(
            line["error"], "file shrank while being sent",
            "{case}: {line}"
        );
        // Seen by the read that comes up short, or before, by the version
        // check as a span or a MiB begins.
        assert!(bytes(&line) <= SIZE / 2, "{case}: {line}");
        assert!(bytes(&line) >= MIB, "{case}: {line}");
        stop(child);
    }
}

/// `serve --check` validates everything a start would and exits.
#[test]
fn serve_check_validates_without_serving() {
    let (dir, keys, root) = keys_and_media("hello\n");
    let root = root.to_str().unwrap();
    let (code, out, err) = run(&["serve", "--keys", &keys, "--root", root, "--check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("configuration ok: ") && out.contains("1 key(s)"),
        "{out}"
    );
    for (text, named) in [
        ("send_timeout = \"soon\"\n", "send_timeout"),
        ("metrics_listen = \"localhost\"\n", "metrics_listen"),
        ("accel_redirect = \"_protected\"\n", "accel_redirect"),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, text).unwrap();
        let config = config.to_str().unwrap();
        assert_one_line_error(
            &[
                "serve", "--keys", &keys, "--root", root, "--config", config, "--check",
            ],
            named,
        );
    }
}

#[test]
fn serve_reloads_its_keys_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (keys, next) = (path("keys.toml"), path("next.toml"));
    run(&["keygen", "--out", &keys, "--id", "old"]);
    run(&["keygen", "--out", &next, "--id", "new"]);
    let root = dir.path().join("media");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "served by the binary\n").unwrap();
    let mut cmd = serve_cmd(&keys, &root);
    cmd.args(["--mount", "/media"]);
    let (child, mut lines, addr) = start_server(cmd);
    let (old_url, new_url) = (sign_a_txt(&keys, "/media"), sign_a_txt(&next, "/media"));
    let status = |url: &str| {
        let res = http_get(&addr, url.trim());
        let body = res.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (res[9..12].to_owned(), body)
    };
    let hangup = |wait_for: &str, lines: &mut std::io::Lines<_>| {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let line: String = lines
            .map_while(Result::ok)
            .find(|l: &String| l.contains(wait_for))
            .expect("the server logs the reload");
        line
    };
    assert_eq!(status(&old_url).0, "200");
    assert_eq!(status(&new_url), ("403".into(), "unknown_key\n".into()));
    // Rotation: the keys file now holds only the new key.
    std::fs::copy(&next, &keys).unwrap();
    let line = hangup("keys reloaded", &mut lines);
    assert!(
        line.contains("active=\"new\"") && line.contains("keys=1"),
        "{line}"
    );
    assert_eq!(status(&new_url).0, "200");
    assert_eq!(status(&old_url), ("403".into(), "unknown_key\n".into()));
    // A file that does not load leaves the keys as they were.
    std::fs::write(&keys, "not = [a keys file").unwrap();
    let line = hangup("keys not reloaded", &mut lines);
    assert!(line.contains(&keys), "the error names the file: {line}");
    assert_eq!(status(&new_url).0, "200");
    assert_eq!(status(&old_url).0, "403");
    stop(child);
}

#[test]
fn serve_reopens_its_root_on_sighup() {
    let (dir, keys, first) = keys_and_media("first release\n");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("a.txt"), "second release\n").unwrap();
    let current = dir.path().join("current");
    std::os::unix::fs::symlink(&first, &current).unwrap();
    let (child, lines, addr) = start_server(serve_cmd(&keys, &current));
    let url = sign_a_txt(&keys, "");
    let body = || {
        let res = http_get(&addr, url.trim());
        res.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(body(), "first release\n");
    // The deployment switches the link, then tells the server.
    let next = dir.path().join("next");
    std::os::unix::fs::symlink(&second, &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    let sent = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let line = lines
        .map_while(Result::ok)
        .find(|l| l.contains("media root reopened"))
        .expect("the server logs the reopening");
    assert!(
        line.contains("now serving from another directory"),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(body(), "second release\n");
    stop(child);
}

#[test]
fn serve_reads_a_config_file_and_env_overrides_it() {
    let (dir, keys, root) = keys_and_media("from the config root\n");
    let k = keys.as_str();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("a.txt"), "from the env root\n").unwrap();
    let config = dir.path().join("mediagate.toml");
    std::fs::write(
        &config,
        format!(
            "keys = {k:?}\nroot = {:?}\nlisten = \"127.0.0.1:0\"\nmount = \"/files\"\n\
             health_path = \"/up\"\nmax_connections = 64\nheader_read_timeout = \"5s\"\nkeep_alive_timeout = \"2m\"\nsend_timeout = \"30s\"\n\
             leeway = \"10s\"\nmax_ttl = \"1d\"\nworkers = 1\nchunk_size = 65536\nsendfile = false\nhttp2 = false\n\
             revalidate_after = \"0s\"\nmax_open_files = 16\nclose_unused_after = \"30s\"\n",
            root.to_str().unwrap()
        ),
    )
    .unwrap();
    let fetch = |env_root: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["serve", "--config", config.to_str().unwrap()]);
        if let Some(r) = env_root {
            cmd.env("MEDIAGATE_ROOT", r);
        }
        let (child, _lines, addr) = start_server(cmd);
        let url = sign_a_txt(k, "/files");
        let file = http_get(&addr, url.trim());
        let health = http_get(&addr, "/up");
        // With http2 off, an HTTP/2 preface does not start an HTTP/2
        // connection: no SETTINGS frame comes back (hyper's HTTP/1 side
        // closes the connection on it).
        let mut h2 = std::net::TcpStream::connect(&addr).unwrap();
        h2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        h2.read_to_end(&mut answer).unwrap();
        stop(child);
        (file, health, answer)
    };
    let (file, health, answer) = fetch(None);
    assert!(file.ends_with("from the config root\n"), "{file}");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"));
    let settings_frame = answer.len() >= 9 && answer[3] == 0x04;
    assert!(!settings_frame, "{answer:?}");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "{answer:?}"
    );
    let (file, _, _) = fetch(Some(other.to_str().unwrap()));
    assert!(file.ends_with("from the env root\n"), "{file}");
    // A config with an unknown setting is a one-line error.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "rooot = \"/tmp\"\n").unwrap();
    assert_one_line_error(
        &["serve", "--config", bad.to_str().unwrap()],
        "unknown field",
    );
    // Each bad value is a one-line error naming its setting.
    let args = [
        "serve",
        "--config",
        bad.to_str().unwrap(),
        "--keys",
        k,
        "--root",
        "/tmp",
    ];
    for (text, needle) in [
        ("leeway = \"soon\"", "leeway"),
        ("close_unused_after = \"0s\"", "close_unused_after"),
        ("send_timeout = \"never\"", "send_timeout"),
        (
            "revalidate_after = \"1ms\"\nrevalidate_after_ms = 1",
            "set revalidate_after alone",
        ),
        ("revalidate_after = \"soon\"", "revalidate_after"),
        ("max_connections = 0", "max_connections: must be at least 1"),
        ("workers = 0", "workers: must be at least 1"),
        (
            "transports = [\"carrier-pigeon\"]",
            "transports: unknown transport",
        ),
        ("transports = []", "transports: name at least one"),
        ("cache_max_age = \"soon\"", "cache_max_age"),
        // Durations past 100 years: refused (they overflowed before).
        (
            "header_read_timeout = \"999999999999999d\"",
            "header_read_timeout: duration '999999999999999d' must be positive and at most 100 years",
        ),
        (
            "keep_alive_timeout = \"0s\"",
            "keep_alive_timeout: duration",
        ),
        ("cache_max_age = \"36501d\"", "cache_max_age: duration"),
        ("trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies"),
        (
            "proxy_protocol = [\"lb.internal\"]",
            "proxy_protocol: \"lb.internal\"",
        ),
        (
            "client_ip_header = \"x-real-ip\"",
            "client_ip_header: needs trusted_proxies",
        ),
        ("cors_origins = [\"null\"]", "CORS origin must be like"),
        (
            "cors_origins = [\"*\"]\ncors_credentials = true",
            "cors_credentials",
        ),
        (
            "cors_credentials = true",
            "cors_credentials: needs cors_origins",
        ),
        (
            "listen = \"localhost:8080\"",
            "listen: not an IP address and port, such as 127.0.0.1:8080",
        ),
        // A value of the wrong type: the message says where it is.
        ("\n\nmax_connections = \"many\"", "line 3: invalid type"),
    ] {
        std::fs::write(&bad, format!("{text}\n")).unwrap();
        assert_one_line_error(&args, needle);
    }
}

#[test]
fn serve_config_sets_transports_caching_proxies_and_cors() {
    let (dir, keys, root) = keys_and_media("hello\n");
    let k = keys.as_str();
    let config = dir.path().join("mediagate.toml");
    let settings = "transports = [\"query\"]\ncache_max_age = \"no-store\"\n\
                    trusted_proxies = [\"127.0.0.1\"]\nclient_ip_header = \"X-Real-IP\"\n\
                    cors_origins = [\"https://app.example\"]\ncors_credentials = true\n\
                    proxy_protocol = [\"127.0.0.2\"]\n";
    std::fs::write(
        &config,
        format!(
            "keys = {k:?}\nroot = {:?}\nlisten = \"127.0.0.1:0\"\n{settings}",
            root.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["serve", "--config", config.to_str().unwrap()]);
    let (child, lines, addr) = start_server(cmd);
    let sign = |extra: &[&str]| sign_for_7(k, &[&["--path", "/a.txt"], extra].concat());
    // A link bound to the client's address, which the trusted proxy (this
    // test, on 127.0.0.1) reports in X-Real-IP.
    let bound = sign(&["--ip", "203.0.113.9"]);
    let ok = http_request(
        &addr,
        "GET",
        &bound,
        &["X-Real-IP: 203.0.113.9", "Origin: https://app.example"],
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    for line in [
        "cache-control: no-store",
        "access-control-allow-origin: https://app.example",
        "access-control-allow-credentials: true",
        "vary: origin",
    ] {
        assert!(ok.contains(line), "{line} in {ok}");
    }
    let other = http_request(&addr, "GET", &bound, &["X-Real-IP: 198.51.100.1"]);
    assert!(
        other.starts_with("HTTP/1.1 403") && other.ends_with("ip\n"),
        "{other}"
    );
    // The same link through a TCP load balancer on 127.0.0.2 that names
    // the client in a PROXY header.
    let proxied = from_balancer(
        &addr,
        &format!(
            "PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n\
             GET {bound} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(proxied.starts_with("HTTP/1.1 200"), "{proxied}");
    // The path transport is off: a path-form link finds no token.
    let path_form = sign(&["--form", "path"]);
    let res = http_get(&addr, &path_form);
    assert!(res.ends_with("missing_token\n"), "{res}");
    // An allowed preflight.
    let res = http_request(
        &addr,
        "OPTIONS",
        "/a.txt",
        &[
            "Origin: https://app.example",
            "Access-Control-Request-Method: GET",
        ],
    );
    assert!(res.starts_with("HTTP/1.1 204"), "{res}");
    stop(child);
    // The access log names the client the balancer reported, and the one
    // the trusted proxy did.
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    for client in ["client=203.0.113.9 ", "client=198.51.100.1 "] {
        assert!(log.iter().any(|l| l.contains(client)), "{client}: {log:?}");
    }
}

#[test]
fn serve_logs_json_lines_when_asked() {
    let (_dir, keys, root) = keys_and_media("hello\n");
    let mut cmd = serve_cmd(&keys, &root);
    cmd.env("MEDIAGATE_LOG_FORMAT", "json");
    let mut child = Served(cmd.stderr(Stdio::piped()).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut next_json = || -> serde_json::Value {
        let line = lines.next().expect("server exited early").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let serving = next_json();
    assert_eq!(serving["message"], "serving", "{serving}");
    let addr = serving["addr"].as_str().unwrap().to_owned();
    let url = sign_a_txt(&keys, "");
    let token = url.split("mg_token=").nth(1).unwrap().trim().to_owned();
    assert!(http_get(&addr, url.trim()).ends_with("hello\n"));
    let access = loop {
        let line = next_json();
        if line["target"] == "mediagate::access" {
            break line;
        }
    };
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["client"], "127.0.0.1");
    assert_eq!(access["path"], "/a.txt");
    assert_eq!(access["user"], "7");
    assert_eq!(access["bytes"], 6);
    assert!(!access.to_string().contains(&token), "{access}");
    // Requests hyper refuses before the service sees them are logged too,
    // with the status hyper sent.
    let oversized = format!("GET /a.txt HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    for (request, status, reason) in [
        (
            "GET /a.txt HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            "malformed_request",
        ),
        ("\u{16}\u{3}\u{1}\u{2}\u{0}", 400, "malformed_request"),
        (oversized.as_str(), 431, "head_too_large"),
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut res = String::new();
        // The server closes with the oversized head's rest unread, and
        // the reset that follows may reach the client before the answer.
        let _ = s.read_to_string(&mut res);
        if status != 431 || !res.is_empty() {
            assert!(res.starts_with(&format!("HTTP/1.1 {status}")), "{res}");
        }
        let line = loop {
            let line = next_json();
            if line["target"] == "mediagate::access" {
                break line;
            }
        };
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["reason"], reason, "{line}");
        assert_eq!(
            (&line["method"], &line["path"]),
            (&"-".into(), &"-".into()),
            "{line}"
        );
        assert_eq!(line["client"], "127.0.0.1", "{line}");
    }
    stop(child);
    // Any other format is a one-line error, and so is a level misspelt
    // (which would have silenced every line, errors included).
    for (var, value, needle) in [
        (
            "MEDIAGATE_LOG_FORMAT",
            "xml",
            "MEDIAGATE_LOG_FORMAT: \"xml\" is not text or json",
        ),
        (
            "MEDIAGATE_LOG",
            "warning",
            "MEDIAGATE_LOG: \"warning\" is not a level",
        ),
    ] {
        let out = bin()
            .env(var, value)
            .args(["serve", "--keys", &keys, "--root", root.to_str().unwrap()])
            .output()
            .unwrap();
        let (code, err) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let k = keys.to_str().unwrap();
    run(&["keygen", "--out", k]);
    let url = sign_a_txt(k, "");
    for args in [
        vec!["sign", "--keys", k, "--user", "7", "--path", "/a.txt"],
        vec!["inspect", url.trim(), "--keys", k],
    ] {
        // The reading end is closed before the command writes a byte.
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let out = bin()
            .args(&args)
            .stdout(Stdio::from(writer))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn a_second_server_on_a_busy_address_fails_unless_it_asks_to_share() {
    let (_dir, keys, root) = keys_and_media("first\n");
    let (first, _lines, addr) = start_server(serve_cmd(&keys, &root));
    let root2 = root.parent().unwrap().join("other");
    std::fs::create_dir_all(&root2).unwrap();
    // Same address, another root: refused at once, with one line that
    // says what to do.
    let mut second = bin();
    second
        .args(["serve", "--keys", &keys, "--root", root2.to_str().unwrap()])
        .args(["--listen", &addr]);
    let out = second.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("another server listens"), "{err}");
    assert!(err.contains("--reuse-port"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The first one still answers every request.
    let url = sign_a_txt(&keys, &format!("http://{addr}"));
    let target = &url[url.find(&addr).unwrap() + addr.len()..];
    for _ in 0..8 {
        assert!(http_get(&addr, target).ends_with("first\n"));
    }
    // Asked for, the handover shares the port.
    let mut handover = bin();
    handover
        .args(["serve", "--keys", &keys, "--root", root2.to_str().unwrap()])
        .args(["--listen", &addr, "--reuse-port"]);
    let (second, _lines2, addr2) = start_server(handover);
    assert_eq!(addr2, addr);
    stop(first);
    stop(second);
}

#[test]
fn sign_grants_a_directory_only_with_prefix() {
    let (_dir, keys, _root) = keys_and_media("x");
    let (code, out, err) = run(&["sign", "--keys", &keys, "--user", "7", "--path", "/pub/"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty());
    assert!(err.contains("--prefix"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Asked for, with or without the slash.
    for path in ["/pub/", "/pub"] {
        let url = sign_for_7(&keys, &["--path", path, "--prefix"]);
        assert!(url.contains("/pub/?mg_token="), "{url}");
    }
}

/// Writes `text` to `path` with mode 0600.
fn write_private(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn no_command_prints_a_value_from_a_bad_keys_file() {
    const SENTINEL: &str = "SENTINELxSECRETxVALUE";
    let (dir, keys, root) = keys_and_media("x");
    let good = std::fs::read_to_string(&keys).unwrap();
    let secret = good
        .lines()
        .find_map(|l| l.strip_prefix("secret = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let files = [
        format!("active = \"k\"\nkeys = \"k:{SENTINEL}\"\n"),
        format!("active = \"{SENTINEL}\"\n[[keys]]\nid = \"k\"\nsecret = \"{secret}\"\n"),
        format!("active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{SENTINEL}\"\n"),
        format!("active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{SENTINEL}@\"\n"),
        format!("active = \"k\"\n[[keys]]\nid = \"{SENTINEL}!\"\nsecret = \"{secret}\"\n"),
        format!("active = \"k\"\n{SENTINEL} = 1\n"),
        format!("active = [\"{SENTINEL}\"]\n"),
        format!("active = \"{SENTINEL}"),
    ];
    let bad = dir.path().join("bad.toml");
    let bad_s = bad.to_str().unwrap();
    let url = sign_a_txt(&keys, "http://127.0.0.1:1");
    let root_s = root.to_str().unwrap();
    for text in &files {
        write_private(&bad, text);
        for args in [
            vec!["keygen", "--out", bad_s],
            vec!["sign", "--keys", bad_s, "--user", "7", "--path", "/a.txt"],
            vec![
                "serve",
                "--keys",
                bad_s,
                "--root",
                root_s,
                "--listen",
                "127.0.0.1:0",
            ],
            vec!["serve", "--keys", bad_s, "--root", root_s, "--check"],
            vec!["inspect", &url, "--keys", bad_s],
        ] {
            let (code, out, err) = run(&args);
            assert_ne!(code, 0, "{args:?} {text:?}");
            assert!(
                !out.contains("SENTINEL") && !err.contains("SENTINEL"),
                "{args:?}: {err}"
            );
            assert!(err.contains("line"), "{args:?} {text:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    // The environment form, bad in each entry.
    for value in [
        SENTINEL.to_owned(),
        format!("k:{SENTINEL}"),
        format!("k:{secret},{SENTINEL}"),
    ] {
        let out = bin()
            .args(["sign", "--user", "7", "--path", "/a.txt"])
            .env("MEDIAGATE_KEYS", &value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(!err.contains("SENTINEL"), "{err}");
        assert!(err.contains("entry"), "{err}");
    }
    // A running server told to reload a bad file logs the problem, not the
    // file, and keeps its keys.
    let live = dir.path().join("live.toml");
    write_private(&live, &good);
    let (child, mut lines, addr) = start_server(serve_cmd(live.to_str().unwrap(), &root));
    for text in &files {
        write_private(&live, text);
        let hup = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        let line = lines
            .by_ref()
            .map(Result::unwrap)
            .find(|l| l.contains("keys not reloaded"))
            .unwrap();
        assert!(!line.contains("SENTINEL"), "{line}");
        assert!(line.contains("line"), "{line}");
    }
    let url = sign_a_txt(&keys, &format!("http://{addr}"));
    let target = &url[url.find(&addr).unwrap() + addr.len()..];
    assert!(http_get(&addr, target).starts_with("HTTP/1.1 200"));
    stop(child);
}

#[test]
fn keys_files_others_may_read_are_refused_by_every_command() {
    let (dir, keys, root) = keys_and_media("x");
    let path = std::path::Path::new(&keys);
    let root_s = root.to_str().unwrap();
    let url = sign_a_txt(&keys, "http://127.0.0.1:1");
    let commands = |keys: &str| {
        vec![
            vec!["keygen".to_owned(), "--out".into(), keys.into()],
            ["sign", "--keys", keys, "--user", "7", "--path", "/a.txt"]
                .map(String::from)
                .to_vec(),
            ["serve", "--keys", keys, "--root", root_s, "--check"]
                .map(String::from)
                .to_vec(),
            ["inspect", &url, "--keys", keys].map(String::from).to_vec(),
        ]
    };
    for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        for args in commands(&keys) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, _, err) = run(&args);
            assert_eq!(code, 2, "{mode:o} {args:?}");
            assert!(err.contains("chmod 600"), "{err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    // The documented override: readable by the group, never by others and
    // never writable by the group.
    for (mode, accepted) in [(0o640, true), (0o440, true), (0o644, false), (0o660, false)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = bin()
            .args(["serve", "--keys", &keys, "--root", root_s, "--check"])
            .env("MEDIAGATE_KEYS_GROUP_READABLE", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.success(), accepted, "{mode:o}");
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        run(&["serve", "--keys", &keys, "--root", root_s, "--check"]).0,
        0
    );
    // Owned by another user: refused, with or without the override (root
    // can make such a file; others skip this part).
    if rustix::process::geteuid().is_root() {
        let theirs = dir.path().join("theirs.toml");
        std::fs::copy(path, &theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let (code, _, err) = run(&[
            "sign",
            "--keys",
            theirs.to_str().unwrap(),
            "--user",
            "7",
            "--path",
            "/a",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("owned by another user"), "{err}");
    }
}

#[test]
fn http2_streams_cannot_take_every_descriptor() {
    let (_dir, keys, root) = keys_and_media("small\n");
    // 128 distinct files, each above the size held in memory.
    std::fs::create_dir_all(root.join("big")).unwrap();
    for i in 0..128 {
        std::fs::write(root.join(format!("big/{i}.bin")), vec![b'x'; 64 << 10]).unwrap();
    }
    let base = "http://127.0.0.1:1";
    let prefix = sign_for_7(
        &keys,
        &[
            "--path",
            "/big/",
            "--prefix",
            "--form",
            "path",
            "--base-url",
            base,
        ],
    );
    let prefix = prefix.strip_prefix(base).unwrap().to_owned();
    // A low open-files limit, as a small container has.
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_mediagate"))
        .args(["serve", "--keys", &keys, "--root", root.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .env_remove("MEDIAGATE_KEYS")
        .env("MEDIAGATE_LOG", "info");
    let (child, lines, addr) = start_server(cmd);
    let rx = lines_on_a_thread(lines);
    // Forty HTTP/1 downloads of a file far larger than the socket buffers,
    // that stop reading: each holds its file, and a place, meanwhile.
    std::fs::write(root.join("big/stall.bin"), vec![b's'; 16 << 20]).unwrap();
    let stalled: Vec<_> = (0..40)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(s, "GET {prefix}stall.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    // Eight connections asking for 128 streams each (the server allows 32
    // at once) of distinct large files, whose windows never open: each
    // would hold its file for the send timeout.
    let targets: Vec<String> = (0..128).map(|i| format!("{prefix}{i}.bin")).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let attackers: Vec<_> = (0..8)
        .map(|_| http2_gets_with_closed_window(&addr, &targets))
        .collect();
    // Every stream let in is answered: the first ones take files, the rest
    // (8 x 32, against the 72 places under this limit less the forty
    // HTTP/1 downloads') get a 503 at once.
    let mut busy = 0;
    while busy < 8 * 32 - (72 - 40) {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server answers every stream");
        if line.contains("mediagate::access") && line.contains("status=503") {
            assert!(line.contains("reason=\"busy\""), "{line}");
            busy += 1;
        }
    }
    // A newcomer is accepted and answered at once, over HTTP/1 and HTTP/2:
    // a small file served, a large one a quick 503 (or served, if a place
    // has come free).
    let small = sign_a_txt(&keys, base);
    let small = small.strip_prefix(base).unwrap();
    let started = std::time::Instant::now();
    let res = http_get(&addr, small);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let res = http_get(&addr, &format!("{prefix}0.bin"));
    assert!(
        res.starts_with("HTTP/1.1 503") || res.starts_with("HTTP/1.1 200"),
        "{res}"
    );
    if res.starts_with("HTTP/1.1 503") {
        assert!(
            res.contains("retry-after: 1") && res.ends_with("busy\n"),
            "{res}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop((attackers, stalled));
    stop(child);
}

#[test]
fn http2_clients_that_keep_windows_shut_give_way_and_are_cut_off() {
    let (dir, keys, root) = keys_and_media("small\n");
    std::fs::write(root.join("big.bin"), vec![b'x'; 1 << 20]).unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "max_connections = 4\nworkers = 1\nwindow_timeout = \"2s\"\nsend_timeout = \"60s\"\n",
    )
    .unwrap();
    let mut cmd = serve_cmd(&keys, &root);
    cmd.args(["--config", config.to_str().unwrap()]);
    let (child, lines, addr) = start_server(cmd);
    let rx = lines_on_a_thread(lines);
    // Four connections at the cap of four, each with a refusal it never
    // lets out (no token: a 403 whose body waits for a window).
    let holders: Vec<_> = (0..4)
        .map(|_| http2_get_with_closed_window(&addr, "/a.txt"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A newcomer is answered at once: refusals keep no connection busy.
    let base = format!("http://{addr}");
    let url = sign_a_txt(&keys, &base);
    let started = std::time::Instant::now();
    let res = http_get(&addr, &url[base.len()..]);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(holders);
    // A download whose window stays shut ends at the window timeout, long
    // before the send timeout, and says so.
    let big = sign_for_7(&keys, &["--path", "/big.bin", "--base-url", &base]);
    let mut stalled = http2_get_with_closed_window(&addr, &big[base.len()..]);
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let _ = stalled.read_to_end(&mut sink);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let line = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.contains("big.bin") {
            break line;
        }
    };
    assert!(line.contains("window never opened"), "{line}");
    stop(child);
}

#[test]
fn keys_are_added_activated_and_retired_in_a_safe_order() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let k = keys.to_str().unwrap();
    assert_eq!(run(&["keygen", "--out", k, "--id", "old"]).0, 0);
    // Added, not signing yet: links still come from the old key.
    let (code, _, err) = run(&["keygen", "--out", k, "--id", "new", "--no-activate"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("kill -HUP"), "the reload hint: {err}");
    let (_, listed, _) = run(&["keys", "list", "--keys", k]);
    assert_eq!(listed, "old  (active: signs new links)\nnew\n");
    let signed = sign_for_7(k, &["--path", "/a"]);
    let (_, out, _) = run(&["inspect", &signed]);
    assert!(out.contains("key id:      old"), "{out}");
    // Activated: new links from the new key; the old one still verifies.
    let (code, _, err) = run(&["keys", "activate", "new", "--keys", k]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("kill -HUP"), "{err}");
    let (_, out, _) = run(&["inspect", &sign_for_7(k, &["--path", "/a"])]);
    assert!(out.contains("key id:      new"), "{out}");
    let (code, out, _) = run(&["inspect", &signed, "--keys", k]);
    assert_eq!(code, 0, "{out}");
    // The active key cannot be retired; an unknown one is named.
    assert_one_line_error(
        &["keys", "retire", "new", "--keys", k],
        "activate another key first",
    );
    assert_one_line_error(
        &["keys", "activate", "nope", "--keys", k],
        "no key \"nope\"",
    );
    // Retired: links it signed are refused from then on.
    let (code, _, err) = run(&["keys", "retire", "old", "--keys", k]);
    assert_eq!(code, 0, "{err}");
    let (_, listed, _) = run(&["keys", "list", "--keys", k]);
    assert_eq!(listed, "new  (active: signs new links)\n");
    let (code, out, _) = run(&["inspect", &signed, "--keys", k]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INVALID"), "{out}");
    // Every write kept the file private; no secret was printed.
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&keys).unwrap();
    let secret = secret
        .lines()
        .find_map(|l| l.strip_prefix("secret = \""))
        .unwrap();
    assert!(!listed.contains(&secret[..20]));
}

#[test]
fn prefix_links_print_the_url_a_player_opens() {
    let (_dir, keys, _root) = keys_and_media("x");
    let base = "https://media.example.com/media";
    // A prefix link for the show, with `extra` options.
    let show = |extra: &[&str]| {
        let mut args = vec!["sign", "--keys", &keys, "--user", "7"];
        args.extend_from_slice(&["--path", "/videos/show/", "--prefix", "--base-url", base]);
        args.extend_from_slice(extra);
        run(&args)
    };
    let (code, url, err) = show(&["--form", "path", "--entry", "master.m3u8"]);
    assert_eq!(code, 0, "{err}");
    assert!(url.starts_with(&format!("{base}/_mg/")), "{url}");
    assert!(url.trim().ends_with("/videos/show/master.m3u8"), "{url}");
    assert!(err.is_empty(), "{err}");
    // Without --entry, the directory's URL, and a note on what to add.
    let (_, url, err) = show(&["--form", "path"]);
    assert!(url.trim().ends_with("/videos/show/"), "{url}");
    assert!(err.contains("--entry"), "{err}");
    // A query-form prefix link: warned about relative segment URLs.
    let (code, url, err) = show(&["--entry", "master.m3u8"]);
    assert_eq!(code, 0);
    assert!(url.contains("/videos/show/master.m3u8?mg_token="), "{url}");
    assert!(err.contains("--form path"), "{err}");
    assert_one_line_error(
        &[
            "sign", "--keys", &keys, "--user", "7", "--path", "/a", "--entry", "x",
        ],
        "--prefix",
    );
}

#[test]
fn cookies_can_name_a_parent_domain() {
    let (_dir, keys, _root) = keys_and_media("x");
    let cookie = sign_for_7(
        &keys,
        &[
            "--path",
            "/videos/",
            "--prefix",
            "--form",
            "cookie",
            "--domain",
            "example.com",
            "--base-url",
            "https://media.example.com/media",
        ],
    );
    assert!(cookie.starts_with("Set-Cookie: mg_token="), "{cookie}");
    assert!(
        cookie.contains("; Path=/media/videos/; Domain=example.com; Max-Age="),
        "{cookie}"
    );
    let (_, out, _) = run(&["inspect", &cookie]);
    assert!(out.contains("scope:       /videos/"), "{out}");
    assert_one_line_error(
        &[
            "sign", "--keys", &keys, "--user", "7", "--path", "/a", "--form", "cookie", "--domain",
            "a b",
        ],
        "host name",
    );
    assert_one_line_error(
        &[
            "sign",
            "--keys",
            &keys,
            "--user",
            "7",
            "--path",
            "/a",
            "--domain",
            "example.com",
        ],
        "--form cookie",
    );
}

#[test]
fn sign_makes_upload_links_and_refuses_what_cannot_be_signed() {
    let (dir, keys, _root) = keys_and_media("x");
    let file = dir.path().join("photo.jpg");
    std::fs::write(&file, b"hello").unwrap();
    let sign = |extra: &[&str]| {
        let mut args = vec![
            "sign",
            "--keys",
            &keys,
            "--user",
            "7",
            "--path",
            "/in/a.jpg",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (code, url, err) = sign(&[
        "--methods",
        "PUT",
        "--max-size",
        "50M",
        "--content-type",
        "image/jpeg",
        "--sha256-of",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let (code, out, err) = run(&["inspect", url.trim(), "--keys", &keys]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("at most 52428800 bytes; creates a new file only"),
        "{out}"
    );
    assert!(
        out.contains("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        "{out}"
    );
    for (extra, says) in [
        (
            &["--max-size", "1K"][..],
            "upload limits need a link that grants PUT",
        ),
        (
            &["--methods", "PUT", "--max-size", "50MB"][..],
            "binary units",
        ),
        (
            &["--methods", "PUT", "--sha256", "abc"][..],
            "not a SHA-256 digest",
        ),
        (
            &["--methods", "PUT", "--sha256-of", "/nonexistent/file"][..],
            "--sha256-of /nonexistent/file",
        ),
    ] {
        let (code, _, err) = sign(extra);
        assert_ne!(code, 0, "{extra:?}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    let (code, _, err) = run(&[
        "sign",
        "--keys",
        &keys,
        "--user",
        "7",
        "--path",
        "/in/",
        "--prefix",
        "--methods",
        "PUT",
        "--replace",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("creates new files only"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_health_check_is_on_by_default_and_can_move_or_go() {
    let (_dir, keys, root) = keys_and_media("x");
    for (args, healthz, other) in [
        (&[][..], "200", None),
        (
            &["--health-path", "/ready"][..],
            "403",
            Some(("/ready", "200")),
        ),
        (&["--health-path", "off"][..], "403", None),
    ] {
        let mut cmd = serve_cmd(&keys, &root);
        cmd.args(args);
        let (child, _lines, addr) = start_server(cmd);
        let res = http_get(&addr, "/healthz");
        assert_eq!(&res[9..12], healthz, "{args:?}: {res}");
        if let Some((path, status)) = other {
            assert_eq!(&http_get(&addr, path)[9..12], status, "{args:?}");
        }
        stop(child);
    }
}

#[test]
fn the_demo_prints_a_link_its_own_keys_explain_and_cleans_up() {
    let mut cmd = bin();
    cmd.args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    let (mut child, _lines, addr) = start_server(cmd);
    let mut out = String::new();
    let stdout = child.0.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    while !out.contains("Press Ctrl-C") {
        assert!(reader.read_line(&mut out).unwrap() > 0, "{out}");
    }
    // The valid link serves the file.
    let valid = out.lines().find(|l| l.contains("curl -i 'http")).unwrap();
    let url = valid.split('\'').nth(1).unwrap();
    let target = &url[url.find(&addr).unwrap() + addr.len()..];
    assert!(http_get(&addr, target).starts_with("HTTP/1.1 200"));
    // The explain line checks a signature with the demo's keys file.
    let explain = out.lines().find(|l| l.contains(" inspect '")).unwrap();
    let link = explain.split('\'').nth(1).unwrap();
    let keys = explain.rsplit("--keys ").next().unwrap().trim();
    assert!(std::path::Path::new(keys).exists(), "{keys}");
    let (code, said, _) = run(&["inspect", link, "--keys", keys]);
    assert_eq!(code, 1);
    assert!(
        said.contains("signature:   valid") && said.contains("INVALID: expired"),
        "{said}"
    );
    stop(child);
    assert!(!std::path::Path::new(keys).exists(), "removed on exit");
}

#[test]
fn revocations_take_effect_on_a_running_server_without_a_restart() {
    let (dir, keys, root) = keys_and_media("revocable\n");
    let revocations = dir.path().join("revocations.toml");
    let (child, mut lines, addr) = start_server(serve_cmd(&keys, &root));
    let status = |url: &str| {
        let res = http_get(&addr, url);
        let body = res.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (res[9..12].to_owned(), body)
    };
    // Each kind waits for the server to log the reload (it looks at the
    // file twice a second), then the link it names is refused.
    let reloaded = |lines: &mut std::io::Lines<_>, rules: usize| {
        let want = format!("rules={rules}");
        lines
            .map_while(Result::ok)
            .find(|l: &String| l.contains("revocations reloaded") && l.contains(&want))
            .expect("the server logs the reload");
    };
    let user7 = sign_a_txt(&keys, "");
    let with_generation = |n: &str, user: &str| {
        let (code, url, err) = run(&[
            "sign",
            "--keys",
            &keys,
            "--user",
            user,
            "--path",
            "/a.txt",
            "--generation",
            n,
        ]);
        assert_eq!(code, 0, "{err}");
        url.trim().to_owned()
    };
    let (gen2, gen3) = (with_generation("2", "8"), with_generation("3", "8"));
    let one = sign_for_7(&keys, &["--path", "/a.txt", "--ttl", "1h"]);
    assert_eq!(status(&user7).0, "200");
    // One link, by its URL: that link only.
    let (code, out, err) = run(&["revoke", "--keys", &keys, "--link", &one]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("revoked link "), "{out}");
    reloaded(&mut lines, 1);
    assert_eq!(status(&one), ("403".into(), "revoked\n".into()));
    assert_eq!(status(&user7).0, "200");
    // A generation: below 3 refused, 3 served.
    assert_eq!(
        run(&["revoke", "--keys", &keys, "--generation", "8:3"]).0,
        0
    );
    reloaded(&mut lines, 2);
    assert_eq!(status(&gen2).0, "403");
    assert_eq!(status(&gen3).0, "200");
    // A user, from now: every link handed out so far; a new one works.
    assert_eq!(run(&["revoke", "--keys", &keys, "--user", "7"]).0, 0);
    reloaded(&mut lines, 3);
    assert_eq!(status(&user7), ("403".into(), "revoked\n".into()));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let fresh = sign_a_txt(&keys, "");
    assert_eq!(status(&fresh).0, "200");
    // inspect says so, and fails.
    let (code, out, _) = run(&["inspect", "--keys", &keys, &user7]);
    assert_eq!(code, 1);
    assert!(out.contains("REVOKED"), "{out}");
    let (code, out, _) = run(&["revoke", "--keys", &keys, "--list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    // A file that does not read keeps the rules in force.
    let good = std::fs::read_to_string(&revocations).unwrap();
    std::fs::write(&revocations, format!("{good}\n[[user]]\nid = 9\n")).unwrap();
    (&mut lines)
        .map_while(Result::ok)
        .find(|l: &String| l.contains("revocations not reloaded") && l.contains("rules=3"))
        .expect("the server says why it kept the rules");
    assert_eq!(status(&user7).0, "403");
    assert_eq!(status(&one).0, "403");
    // SIGHUP reads it again too; an emptied file lifts every rule.
    std::fs::write(&revocations, "").unwrap();
    reloaded(&mut lines, 0);
    assert_eq!(status(&user7).0, "200");
    stop(child);
}

#[test]
fn revoke_refuses_what_it_cannot_record_in_one_line() {
    let (dir, keys, _root) = keys_and_media("x\n");
    let file = dir.path().join("revocations.toml");
    std::fs::write(&file, "[[user]]\nid = \"7\"\n").unwrap();
    for (args, needle) in [
        (vec!["revoke", "--keys", &keys, "--user", "7"], "line 1"),
        (
            vec!["revoke", "--keys", &keys, "--generation", "7"],
            "USER:N",
        ),
        (
            vec!["revoke", "--keys", &keys, "--link", "nope"],
            "not a mediagate link",
        ),
        (vec!["revoke", "--user", "7"], "no revocations file"),
        (
            vec![
                "revoke",
                "--redis",
                "redis://:hunter2@127.0.0.1:1",
                "--user",
                "7",
            ],
            "visible to every user",
        ),
        (vec!["revoke", "--keys", &keys], "required"),
    ] {
        std::fs::write(&file, "[[user]]\nid = \"7\"\n").unwrap();
        let (code, out, err) = run(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // The bad file was left as it was.
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "[[user]]\nid = \"7\"\n"
    );
    let (code, _, err) = run(&["revoke", "--keys", &keys, "--user", "a b"]);
    assert_ne!(code, 0);
    assert!(err.contains("user id"), "{err}");
}

/// A `redis-server` of our own on a free port of 127.0.0.1, without
/// persistence (a restart loses its data, as a misconfigured one would);
/// stopped when dropped.
struct Redis {
    child: Option<std::process::Child>,
    port: u16,
}

impl Redis {
    fn start(port: Option<u16>) -> Redis {
        let port = port.unwrap_or_else(|| {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        });
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server; .ci/run installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command, in Redis's protocol; the reply's first line.
    fn command(&self, args: &[&str]) -> String {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn nodes_sharing_redis_refuse_revoked_links_and_never_serve_them_when_it_fails() {
    let mut redis = Redis::start(None);
    let (dir, keys, root) = keys_and_media("shared\n");
    let config = |when_stale: &str| {
        let path = dir.path().join(format!("{when_stale}.toml"));
        std::fs::write(
            &path,
            format!(
                "redis = \"{}\"\nrevocations_max_staleness = \"1s\"\nrevocations_when_stale = \"{when_stale}\"\n",
                redis.url()
            ),
        )
        .unwrap();
        path
    };
    let (refuse, serve) = (config("refuse"), config("serve"));
    // Three nodes that refuse when the rules go stale, one that serves.
    let mut nodes = Vec::new();
    for cfg in [&refuse, &refuse, &refuse, &serve] {
        let mut cmd = serve_cmd(&keys, &root);
        cmd.args(["--config", cfg.to_str().unwrap()]);
        let (child, lines, addr) = start_server(cmd);
        let _drained = lines_on_a_thread(lines);
        nodes.push((child, addr, _drained));
    }
    let status = |addr: &str, url: &str| {
        let res = http_get(addr, url);
        let body = res.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (res[9..12].to_owned(), body)
    };
    let all = |url: &str, want: (&str, &str)| {
        nodes
            .iter()
            .all(|(_, addr, _)| status(addr, url) == (want.0.to_owned(), want.1.to_owned()))
    };
    let leaked = sign_a_txt(&keys, "");
    let banned = sign_for_7(&keys, &["--path", "/a.txt"]);
    let other = {
        let (code, url, err) = run(&["sign", "--keys", &keys, "--user", "8", "--path", "/a.txt"]);
        assert_eq!(code, 0, "{err}");
        url.trim().to_owned()
    };
    assert!(all(&leaked, ("200", "shared\n")));
    // One link, then a user, revoked through Redis: every node refuses
    // within two seconds.
    let url = redis.url();
    let (code, out, err) = run(&["revoke", "--redis", &url, "--link", &leaked]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version 1"), "{out}");
    assert!(within(Duration::from_secs(2), || all(
        &leaked,
        ("403", "revoked\n")
    )));
    assert_eq!(run(&["revoke", "--redis", &url, "--user", "7"]).0, 0);
    assert!(within(Duration::from_secs(2), || all(
        &banned,
        ("403", "revoked\n")
    )));
    assert!(all(&other, ("200", "shared\n")));
    let (code, out, _) = run(&["inspect", "--keys", &keys, "--redis", &url, &banned]);
    assert_eq!(code, 1);
    assert!(out.contains("REVOKED"), "{out}");
    // Load on every node while Redis goes and comes back: every answer is
    // a 200 of an unrevoked link, a 403 or a 503, never anything else.
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = nodes
        .iter()
        .map(|(_, addr, _)| {
            let (addr, stop_load) = (addr.clone(), stop_load.clone());
            let (leaked, other) = (leaked.clone(), other.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeMap::<String, usize>::new();
                while !stop_load.load(std::sync::atomic::Ordering::Relaxed) {
                    for (name, url) in [("leaked", &leaked), ("other", &other)] {
                        let res = http_get(&addr, url);
                        *seen.entry(format!("{name} {}", &res[9..12])).or_default() += 1;
                    }
                }
                seen
            })
        })
        .collect();
    // Redis goes: within the staleness nothing changes; past it the
    // refusing nodes answer 503 (their health check too), the serving one
    // goes on with the rules it has. No revoked link is served anywhere.
    redis.stop();
    std::thread::sleep(Duration::from_millis(1500));
    for (i, (_, addr, _)) in nodes.iter().enumerate() {
        assert_eq!(status(addr, &leaked).0, "403", "node {i}");
        let (code, body) = status(addr, &other);
        let health = status(addr, "/healthz").0;
        if i < 3 {
            assert_eq!(
                (code.as_str(), body.as_str()),
                ("503", "revocations_unavailable\n")
            );
            assert_eq!(health, "503");
        } else {
            assert_eq!(code, "200");
            assert_eq!(health, "200");
            let says_stale = || http_get(addr, "/healthz").contains("mediagate-revocations: stale");
            assert!(within(Duration::from_secs(2), says_stale));
        }
    }
    // Back, but empty (no persistence): the nodes keep what they held.
    let redis = Redis::start(Some(redis.port));
    assert!(within(Duration::from_secs(5), || all(
        &other,
        ("200", "shared\n")
    )));
    assert!(all(&leaked, ("403", "revoked\n")));
    assert!(all(&banned, ("403", "revoked\n")));
    // Rules past their time are dropped as new ones are recorded.
    let expired = "link:AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        redis.command(&["HSET", "mediagate:revocations", expired, "1"]),
        ":1"
    );
    assert_eq!(run(&["revoke", "--redis", &url, "--user", "9"]).0, 0);
    assert_eq!(
        redis.command(&["HEXISTS", "mediagate:revocations", expired]),
        ":0"
    );
    // A value that does not read is never taken for "nothing revoked".
    assert_eq!(
        redis.command(&["HSET", "mediagate:revocations", "user:10", "garbage"]),
        ":1"
    );
    assert!(
        redis
            .command(&["INCR", "mediagate:revocations:version"])
            .starts_with(':')
    );
    std::thread::sleep(Duration::from_millis(2500));
    for (i, (_, addr, _)) in nodes.iter().enumerate() {
        assert_eq!(status(addr, &leaked).0, "403", "node {i}");
        let want = if i < 3 { "503" } else { "200" };
        assert_eq!(status(addr, &other).0, want, "node {i}");
    }
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    for (i, seen) in load.into_iter().map(|t| t.join().unwrap()).enumerate() {
        for (what, n) in &seen {
            let allowed = ["leaked 403", "other 200", "other 503"];
            assert!(
                allowed.contains(&what.as_str()),
                "node {i}: {n} x {what}: {seen:?}"
            );
        }
        assert!(
            seen.get("other 200").copied().unwrap_or(0) > 0,
            "node {i}: {seen:?}"
        );
    }
    for (child, _, _) in nodes {
        stop(child);
    }
}

/// A `mediagate serve` for a proxy in front to ask: `/a.txt` holding
/// `a_txt` and `/b.txt`, readable to nginx's workers, mounted at `/media`,
/// with the config lines `extra`.
struct Behind {
    _dir: tempfile::TempDir,
    keys: String,
    root: std::path::PathBuf,
    child: Served,
    addr: String,
    _drained: std::sync::mpsc::Receiver<String>,
}

fn behind_a_proxy(a_txt: &str, extra: &str) -> Behind {
    let (dir, keys, root) = keys_and_media(a_txt);
    std::fs::write(root.join("b.txt"), "another file\n").unwrap();
    for f in ["a.txt", "b.txt"] {
        readable_to_all(&root.join(f));
    }
    let config = dir.path().join("mediagate.toml");
    std::fs::write(&config, format!("mount = \"/media\"\n{extra}")).unwrap();
    let mut cmd = serve_cmd(&keys, &root);
    cmd.args(["--config", config.to_str().unwrap()]);
    let (child, lines, addr) = start_server(cmd);
    Behind {
        _dir: dir,
        keys,
        root,
        child,
        addr,
        _drained: lines_on_a_thread(lines),
    }
}

/// Through the proxy at `via`, `url` (to `/a.txt`) is served whole, ending
/// with `body`, and its first six bytes as a 206.
fn assert_served_through(via: &str, url: &str, body: &str) -> String {
    let res = http_get(via, url);
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with(&format!("\r\n\r\n{body}")), "{res}");
    let ranged = http_request(via, "GET", url, &["Range: bytes=0-5"]);
    assert!(ranged.starts_with("HTTP/1.1 206"), "{ranged}");
    assert!(
        ranged.ends_with(&format!("\r\n\r\n{}", &body[..6])),
        "{ranged}"
    );
    res
}

/// Through the proxy at `via`, links to `/a.txt` that must not pass (a
/// forged one, one for another file, an expired one, none at all) are
/// refused 403 with mediagate's reason in `mediagate-reason`.
fn assert_refusals_through(via: &str, keys: &str, url: &str) {
    let forged = format!("{}AAAA", &url[..url.len() - 4]);
    let scope = url.replace("/a.txt", "/b.txt");
    let expired = expired_a_txt(keys, "/media");
    for (target, reason) in [
        (forged.as_str(), "bad_signature"),
        (scope.as_str(), "scope"),
        (expired.as_str(), "expired"),
        ("/media/a.txt", "missing_token"),
    ] {
        let res = http_get(via, target);
        assert!(res.starts_with("HTTP/1.1 403"), "{reason}: {res}");
        assert!(
            res.to_ascii_lowercase()
                .contains(&format!("mediagate-reason: {reason}")),
            "{res}"
        );
    }
}

#[test]
fn nginx_auth_request_serves_files_that_mediagate_grants() {
    let m = behind_a_proxy("served by nginx\n", "auth_path = \"/auth\"\n");
    let nginx = Nginx::start(&format!(
        "  location /media/ {{\n    auth_request /_mediagate;\n\
         \x20   auth_request_set $mg_reason $upstream_http_mediagate_reason;\n\
         \x20   auth_request_set $mg_user $upstream_http_mediagate_user;\n\
         \x20   add_header mediagate-reason $mg_reason always;\n\
         \x20   add_header mediagate-user $mg_user always;\n\
         \x20   alias {}/;\n  }}\n\
         \x20 location = /_mediagate {{\n    internal;\n    proxy_pass http://{}/auth;\n\
         \x20   proxy_pass_request_body off;\n    proxy_set_header Content-Length \"\";\n\
         \x20   proxy_set_header X-Original-URI $request_uri;\n\
         \x20   proxy_set_header X-Original-Method $request_method;\n  }}",
        m.root.display(),
        m.addr
    ));
    let via = format!("127.0.0.1:{}", nginx.port);
    let url = sign_a_txt(&m.keys, "/media");
    // A range is nginx's to serve, once mediagate has granted the link.
    let res = assert_served_through(&via, &url, "served by nginx\n");
    assert!(res.contains("mediagate-user: 7"), "{res}");
    // Refusals: nginx answers 403, with mediagate's reason.
    assert_refusals_through(&via, &m.keys, &url);
    // The endpoint itself answers only its proxies; directly, it is 403
    // for a request it cannot read.
    let direct = http_get(&m.addr, "/auth");
    assert!(direct.starts_with("HTTP/1.1 403"), "{direct}");
    drop(nginx);
    stop(m.child);
}

#[test]
fn nginx_serves_what_mediagate_grants_by_x_accel_redirect() {
    let m = behind_a_proxy("sent by nginx\n", "accel_redirect = \"/_protected\"\n");
    let (keys, root) = (&m.keys, &m.root);
    std::fs::write(root.join("a b?.txt"), "an awkward name\n").unwrap();
    readable_to_all(&root.join("a b?.txt"));
    let nginx = Nginx::start(&format!(
        "  location /media/ {{\n    proxy_pass http://{};\n\
         \x20   proxy_set_header X-Forwarded-For $remote_addr;\n  }}\n\
         \x20 location /_protected/ {{\n    internal;\n    alias {}/;\n  }}",
        m.addr,
        root.display()
    ));
    let via = format!("127.0.0.1:{}", nginx.port);
    let url = sign_a_txt(keys, "/media");
    // Ranges and conditional requests are nginx's, on the original headers.
    let res = assert_served_through(&via, &url, "sent by nginx\n");
    let lower = res.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/plain; charset=utf-8"),
        "{res}"
    );
    assert!(lower.contains("cache-control: private"), "{res}");
    assert!(!lower.contains("x-accel-redirect"), "{res}");
    // A name that needs escaping reaches the right file.
    let awkward = sign_for_7(keys, &["--path", "/a b?.txt", "--base-url", "/media"]);
    let res = http_get(&via, &awkward);
    assert!(res.ends_with("\r\n\r\nan awkward name\n"), "{res}");
    // The path form and the download name work as in direct mode.
    let path_form = sign_for_7(
        keys,
        &["--path", "/a.txt", "--base-url", "/media", "--form", "path"],
    );
    assert!(http_get(&via, &path_form).ends_with("sent by nginx\n"));
    let named = sign_for_7(
        keys,
        &[
            "--path",
            "/a.txt",
            "--base-url",
            "/media",
            "--attachment",
            "x.txt",
        ],
    );
    let res = http_get(&via, &named);
    assert!(
        res.to_ascii_lowercase()
            .contains("content-disposition: attachment; filename=\"x.txt\""),
        "{res}"
    );
    // Refusals: mediagate's, passed on by nginx.
    assert_refusals_through(&via, keys, &url);
    // The internal location is not reachable from outside.
    let res = http_get(&via, "/_protected/a.txt");
    assert!(res.starts_with("HTTP/1.1 404"), "{res}");
    drop(nginx);
    stop(m.child);
}

#[test]
fn caddy_forward_auth_serves_files_that_mediagate_grants() {
    let m = behind_a_proxy("served by caddy\n", "auth_path = \"/auth\"\n");
    // Caddy's forward_auth sends the original method and URI in
    // X-Forwarded-Method and X-Forwarded-Uri, with the client's headers.
    let caddy = Caddy::start(&format!(
        "  route /media/* {{\n    forward_auth {} {{\n      uri /auth\n\
         \x20     copy_headers mediagate-user\n    }}\n\
         \x20   uri strip_prefix /media\n    root * {}\n    file_server\n  }}",
        m.addr,
        m.root.display()
    ));
    let via = format!("127.0.0.1:{}", caddy.port);
    let url = sign_a_txt(&m.keys, "/media");
    assert_served_through(&via, &url, "served by caddy\n");
    // The cookie transport: the client's Cookie header reaches the check.
    let token = url.split("mg_token=").nth(1).unwrap();
    let cookie = format!("Cookie: mg_token={token}");
    let res = http_request(&via, "GET", "/media/a.txt", &[&cookie]);
    assert!(res.ends_with("served by caddy\n"), "{res}");
    // Refusals: Caddy hands the client mediagate's answer.
    assert_refusals_through(&via, &m.keys, &url);
    drop(caddy);
    stop(m.child);
}

#[test]
fn serve_exposes_prometheus_metrics_on_a_listener_of_their_own() {
    let (dir, keys, root) = keys_and_media("counted\n");
    let config = dir.path().join("mediagate.toml");
    std::fs::write(
        &config,
        "mount = \"/media\"\nmetrics_listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut cmd = serve_cmd(&keys, &root);
    cmd.args(["--config", config.to_str().unwrap()]);
    let mut child = Served(cmd.stderr(Stdio::piped()).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let (mut metrics, mut media) = (None, None);
    while metrics.is_none() || media.is_none() {
        let line = lines.next().expect("server exited early").unwrap();
        let field = |name: &str| {
            line.split(name)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        };
        if line.contains("metrics served") {
            metrics = field("listen=");
        } else if line.contains("serving") {
            media = field("addr=");
        }
    }
    let (metrics, media) = (metrics.unwrap(), media.unwrap());
    let rx = lines_on_a_thread(lines);
    let url = sign_a_txt(&keys, "/media");
    assert!(http_get(&media, &url).ends_with("counted\n"));
    let forged = format!("{}AAAA", &url[..url.len() - 4]);
    assert!(http_get(&media, &forged).starts_with("HTTP/1.1 403"));
    // A reload is counted.
    let sent = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(
        rx.iter().any(|l| l.contains("keys reloaded")),
        "the server logs the reload"
    );
    let res = http_get(&metrics, "/metrics");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let value = |series: &str| -> f64 {
        res.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{res}"))
    };
    assert_eq!(
        value("mediagate_requests_total{status=\"200\",reason=\"\"}"),
        1.0
    );
    assert_eq!(
        value("mediagate_requests_total{status=\"403\",reason=\"bad_signature\"}"),
        1.0
    );
    assert_eq!(value("mediagate_response_body_bytes_total"), 22.0, "8 + 14");
    assert_eq!(value("mediagate_response_duration_seconds_count"), 2.0);
    assert_eq!(value("mediagate_file_cache_misses_total"), 1.0);
    assert_eq!(value("mediagate_key_reloads_total"), 1.0);
    assert_eq!(value("mediagate_root_reloads_total"), 1.0);
    assert!(value("mediagate_open_fds") > 3.0);
    assert!(value("mediagate_connections_open") >= 0.0);
    assert!(res.contains("mediagate_build_info{version=\""), "{res}");
    // Not on the media port, and nothing else on the metrics one.
    assert!(http_get(&media, "/metrics").starts_with("HTTP/1.1 404"));
    assert!(http_get(&metrics, "/media/a.txt").starts_with("HTTP/1.1 404"));
    stop(child);
}
