//! HTTPS from `mediagate serve` itself (`[tls]`), checked with real
//! clients: curl and `openssl s_client` against a test CA.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

mod support;
use mediagate_signer::time::{Duration as Days, OffsetDateTime};
use support::{Served, bin, keys_and_media, lines_on_a_thread, run, sign_for_7, stop};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A test certificate authority; its certificate is at `ca`.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    ca: PathBuf,
}

impl TestCa {
    fn new(dir: &Path) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "mediagate test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            ca,
        }
    }

    /// Writes a certificate for `names` (its common name: `cn`), valid
    /// from `days.0` to `days.1` days from now, and its key, to
    /// `{file}.pem` and `{file}.key` in `dir`.
    fn site(&self, dir: &Path, file: &str, cn: &str, names: &[&str], days: (i64, i64)) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let now = OffsetDateTime::now_utc();
        params.not_before = now + Days::days(days.0);
        params.not_after = now + Days::days(days.1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
}

/// A config serving `root` with `keys` over HTTPS on a free port (and plain
/// HTTP too when `plain`), with the certificates named (`{name}.pem`,
/// `{name}.key` in `dir`); its path.
fn config(dir: &Path, keys: &str, root: &Path, plain: bool, certs: &[&str]) -> PathBuf {
    let mut text = format!("keys = {keys:?}\nroot = {:?}\n", root.to_str().unwrap());
    if plain {
        text.push_str("listen = \"127.0.0.1:0\"\n");
    }
    text.push_str("[tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [\n");
    for name in certs {
        let pem = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        text.push_str(&format!("  {{ cert = {pem:?}, key = {key:?} }},\n"));
    }
    text.push_str("]\n");
    let path = dir.join("mediagate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A server started with `config`; its stderr lines, and the addresses it
/// serves, plain first, as logged.
fn start(config: &Path) -> (Served, Receiver<String>, Vec<(String, bool)>) {
    let mut cmd = bin();
    cmd.args(["serve", "--config", config.to_str().unwrap()]);
    let mut child = Served(cmd.stderr(Stdio::piped()).spawn().unwrap());
    let lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let rx = lines_on_a_thread(lines);
    let mut addrs = Vec::new();
    let expected = std::fs::read_to_string(config)
        .unwrap()
        .matches("listen =")
        .count();
    while addrs.len() < expected {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server starts");
        if let Some(rest) = line.split(" addr=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            addrs.push((addr, line.contains("serving HTTPS")));
        }
    }
    (child, rx, addrs)
}

/// A link for user 7 to `/a.txt` at `https://{host}:PORT`, PORT being
/// `https`'s.
fn link_at(keys: &str, host: &str, https: &str) -> String {
    let base = format!("https://{host}:{}", port(https));
    sign_for_7(keys, &["--path", "/a.txt", "--base-url", &base])
}

/// The port of `addr` (`127.0.0.1:PORT`).
fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// curl with the test CA, `host` resolved to 127.0.0.1, and `args`;
/// the body, then a line with the status and HTTP version.
fn curl(ca: &Path, host: &str, addr: &str, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{}:127.0.0.1", port(addr))])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subject of the certificate the server at `addr` presents to a
/// client asking for `sni` (none: no SNI).
fn subject(addr: &str, sni: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", addr]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.stdin(Stdio::null()).output().expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or_else(|| panic!("no certificate from {addr}: {text}"))
        .trim()
        .to_owned()
}

#[test]
fn https_serves_http1_and_http2_beside_plain_http() {
    let (dir, keys, root) = keys_and_media("over TLS\n");
    let ca = TestCa::new(dir.path());
    ca.site(dir.path(), "site", "media.test", &["media.test"], (-1, 30));
    let config = config(dir.path(), &keys, &root, true, &["site"]);
    let (child, _lines, addrs) = start(&config);
    let (plain, https) = (&addrs[0].0, &addrs[1].0);
    assert_eq!((addrs[0].1, addrs[1].1), (false, true), "{addrs:?}");
    let base = format!("https://media.test:{}", port(https));
    let url = sign_for_7(&keys, &["--path", "/a.txt", "--base-url", &base]);
    for (version, said) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let got = curl(&ca.ca, "media.test", https, &[version, &url]);
        assert_eq!(got, format!("over TLS\n\n200 {said}"), "{version}");
        let range = curl(&ca.ca, "media.test", https, &[version, "-r", "0-3", &url]);
        assert_eq!(range, format!("over\n206 {said}"), "{version}");
        // A forged link: refused with its reason, over TLS as over HTTP.
        let forged = format!("{}AAAA", &url[..url.len() - 4]);
        let refused = curl(&ca.ca, "media.test", https, &[version, "-i", &forged]);
        assert!(refused.ends_with(&format!("403 {said}")), "{refused}");
        assert!(
            refused
                .to_ascii_lowercase()
                .contains("mediagate-reason: bad_signature"),
            "{refused}"
        );
    }
    // The plain listener beside it serves the same link.
    let plain_url = url.replace(&base, &format!("http://{plain}"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", &plain_url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over TLS\n");
    stop(child);
}

#[test]
fn the_certificate_is_chosen_by_the_name_the_client_asks_for() {
    let (dir, keys, root) = keys_and_media("x\n");
    let ca = TestCa::new(dir.path());
    ca.site(dir.path(), "a", "a.test", &["a.test"], (-1, 30));
    ca.site(dir.path(), "b", "b.test", &["b.test", "*.b.test"], (-1, 30));
    let config = config(dir.path(), &keys, &root, false, &["a", "b"]);
    let (child, _lines, addrs) = start(&config);
    let https = &addrs[0].0;
    assert_eq!(subject(https, Some("b.test")), "CN = b.test");
    assert_eq!(subject(https, Some("cdn.b.test")), "CN = b.test");
    assert_eq!(subject(https, Some("a.test")), "CN = a.test");
    // No name, or one no certificate covers: the first one.
    assert_eq!(subject(https, None), "CN = a.test");
    assert_eq!(subject(https, Some("other.test")), "CN = a.test");
    // And a client that checks it accepts the wildcard's.
    let url = link_at(&keys, "cdn.b.test", https);
    assert_eq!(curl(&ca.ca, "cdn.b.test", https, &[&url]), "x\n\n200 2");
    stop(child);
}

#[test]
fn only_tls_1_2_and_1_3_are_spoken() {
    let (dir, keys, root) = keys_and_media("x\n");
    let ca = TestCa::new(dir.path());
    ca.site(dir.path(), "site", "media.test", &["media.test"], (-1, 30));
    let config = config(dir.path(), &keys, &root, false, &["site"]);
    let (child, _lines, addrs) = start(&config);
    let https = &addrs[0].0;
    let url = link_at(&keys, "media.test", https);
    for version in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let args = [&version[..], &[url.as_str()]].concat();
        assert!(curl(&ca.ca, "media.test", https, &args).starts_with("x\n"));
    }
    // A client that offers TLS 1.1 alone (allowed to, at security level
    // 0) is refused by the server: an alert from it, not a refusal of the
    // client's own.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            https,
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("alert handshake failure") || said.contains("alert protocol version"),
        "{said}"
    );
    stop(child);
}

/// An `openssl s_client` connection kept open: requests written to it,
/// responses read from it.
struct Open {
    child: std::process::Child,
    out: Receiver<u8>,
}

impl Open {
    fn connect(addr: &str, sni: &str) -> Open {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", addr, "-servername", sni])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = [0u8];
            while stdout.read_exact(&mut byte).is_ok() {
                if tx.send(byte[0]).is_err() {
                    break;
                }
            }
        });
        Open { child, out }
    }

    /// Sends a GET of `target` and reads until the response ends with `body`.
    fn get(&mut self, target: &str, body: &str) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        write!(stdin, "GET {target} HTTP/1.1\r\nHost: media.test\r\n\r\n").unwrap();
        stdin.flush().unwrap();
        let mut got = Vec::new();
        while !got.ends_with(body.as_bytes()) {
            let byte = self
                .out
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no response: {}", String::from_utf8_lossy(&got)));
            got.push(byte);
        }
        String::from_utf8(got).unwrap()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a log line containing `needle`.
fn await_line(lines: &Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn certificates_reload_on_sighup_and_open_connections_stay() {
    let (dir, keys, root) = keys_and_media("still here\n");
    let ca = TestCa::new(dir.path());
    ca.site(dir.path(), "site", "first", &["media.test"], (-1, 30));
    let config = config(dir.path(), &keys, &root, false, &["site"]);
    let (child, lines, addrs) = start(&config);
    let https = &addrs[0].0;
    let url = sign_for_7(&keys, &["--path", "/a.txt"]);
    let mut open = Open::connect(https, "media.test");
    assert!(open.get(&url, "still here\n").starts_with("HTTP/1.1 200"));

    // Swapped, then the signal: new connections get the new one.
    ca.site(dir.path(), "site", "second", &["media.test"], (-1, 30));
    let hup = |pid: u32| {
        let sent = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    hup(child.id());
    await_line(&lines, "TLS certificates reloaded");
    assert_eq!(subject(https, Some("media.test")), "CN = second");
    // The connection opened before goes on with its session.
    assert!(open.get(&url, "still here\n").starts_with("HTTP/1.1 200"));

    // A broken file on reload: said, and the certificate in force stays.
    std::fs::write(dir.path().join("site.key"), "not a key").unwrap();
    hup(child.id());
    let said = await_line(&lines, "TLS certificates not reloaded");
    assert!(said.contains("site.key"), "{said}");
    assert!(!said.contains("not a key"), "{said}");
    assert_eq!(subject(https, Some("media.test")), "CN = second");
    drop(open);
    stop(child);
}

#[test]
fn a_certificate_that_cannot_serve_is_refused_at_start_in_one_line() {
    let (dir, keys, root) = keys_and_media("x\n");
    let d = dir.path();
    let ca = TestCa::new(d);
    ca.site(d, "expired", "old", &["media.test"], (-30, -1));
    ca.site(d, "future", "new", &["media.test"], (2, 30));
    ca.site(d, "good", "good", &["media.test"], (-1, 30));
    ca.site(d, "other", "other", &["media.test"], (-1, 30));
    // good's certificate with other's key.
    std::fs::copy(d.join("good.pem"), d.join("mismatch.pem")).unwrap();
    std::fs::copy(d.join("other.key"), d.join("mismatch.key")).unwrap();
    std::fs::write(d.join("notpem.pem"), "hello").unwrap();
    std::fs::copy(d.join("good.key"), d.join("notpem.key")).unwrap();
    std::fs::copy(d.join("good.pem"), d.join("nokey.pem")).unwrap();
    std::fs::write(
        d.join("nokey.key"),
        std::fs::read(d.join("good.pem")).unwrap(),
    )
    .unwrap();
    std::fs::copy(d.join("good.pem"), d.join("gone.pem")).unwrap();
    for (name, needle) in [
        ("expired", "expired.pem: the certificate is valid from"),
        ("future", "future.pem: the certificate is valid from"),
        (
            "mismatch",
            "mismatch.key is not the key of the certificate in",
        ),
        ("notpem", "notpem.pem: no PEM certificate in it"),
        ("nokey", "nokey.key: no PEM private key in it"),
        ("gone", "cannot read"),
    ] {
        let config = config(d, &keys, &root, false, &[name]);
        for check in [true, false] {
            let mut args = vec!["serve", "--config", config.to_str().unwrap()];
            if check {
                args.push("--check");
            }
            let (code, out, err) = run(&args);
            assert_ne!(code, 0, "{name}: {out}");
            assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
            assert!(err.contains(needle), "{name}: {err}");
            assert!(!err.contains("PRIVATE KEY"), "{name}: {err}");
        }
    }
    // With none of them wrong, the same check passes.
    let config = config(d, &keys, &root, false, &["good", "other"]);
    let (code, out, err) = run(&["serve", "--config", config.to_str().unwrap(), "--check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(2 certificate(s))"), "{out}");
}
