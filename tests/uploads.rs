//! Uploads against the running server (`mediagate serve` with
//! `[uploads]`): real sockets, curl, concurrent clients, a server killed
//! mid-upload, a file-size limit, and downloads right after an upload.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Served, bin, keys_and_media, sign_for_7, start_server, within};

/// The first of `log`'s lines (within 5 s) that holds every one of `parts`.
fn line_with(log: &std::sync::mpsc::Receiver<String>, parts: &[&str]) -> Option<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let line = log.recv_timeout(left).ok()?;
        if parts.iter().all(|p| line.contains(p)) {
            return Some(line);
        }
    }
    None
}

/// A server with uploads on, over a fresh keys file and media root.
struct Uploading {
    dir: tempfile::TempDir,
    keys: String,
    root: PathBuf,
    config: PathBuf,
    server: Option<Served>,
    addr: String,
    /// The server's log lines, read on a thread of their own.
    log: Option<std::sync::mpsc::Receiver<String>>,
}

impl Uploading {
    /// `[uploads]` with `settings` (TOML lines) beside the defaults the
    /// tests need (no free-space reserve: the test machine's disk may be
    /// fuller than the default allows).
    fn start(settings: &str) -> Uploading {
        Uploading::start_with("", settings)
    }

    /// [`start`](Self::start), with `top` (TOML lines) before the table.
    fn start_with(top: &str, settings: &str) -> Uploading {
        let (dir, keys, root) = keys_and_media("a");
        std::fs::create_dir_all(root.join("in")).unwrap();
        let config = dir.path().join("mediagate.toml");
        std::fs::write(
            &config,
            format!(
                "root = {root:?}\nkeys = {keys:?}\nlisten = \"127.0.0.1:0\"\nworkers = 2\n{top}\n\
                 [uploads]\nmin_free = 0\n{settings}\n"
            ),
        )
        .unwrap();
        let mut u = Uploading {
            dir,
            keys,
            root,
            config,
            server: None,
            addr: String::new(),
            log: None,
        };
        u.restart();
        u
    }

    /// Starts the server (again).
    fn restart(&mut self) {
        let mut cmd = bin();
        cmd.args(["serve", "--config", self.config.to_str().unwrap()]);
        let (child, lines, addr) = start_server(cmd);
        // Read on a thread, so that it never blocks on a full pipe.
        self.log = Some(support::lines_on_a_thread(lines));
        self.server = Some(child);
        self.addr = addr;
    }

    /// An upload link (the path form of `sign`'s query URL's target) for
    /// `path`, with `args`.
    fn link(&self, path: &str, args: &[&str]) -> String {
        let base = format!("http://{}", self.addr);
        let mut all = vec!["--path", path, "--methods", "PUT", "--base-url", &base];
        all.extend_from_slice(args);
        sign_for_7(&self.keys, &all)
    }

    /// Names in `dir` below the root, sorted.
    fn names(&self, dir: &str) -> Vec<String> {
        names(&self.root.join(dir))
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    n.sort();
    n
}

/// Sends `head` (the request line and headers, without the blank line)
/// and then `body`; returns what came back before the server closed, or
/// within 5 s.
fn exchange(addr: &str, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{head}\r\nconnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The request target of a signed URL (`/path?mg_token=...`).
fn target(url: &str) -> &str {
    let after = url.find("://").map_or(url, |i| &url[i + 3..]);
    after.find('/').map_or("/", |i| &after[i..])
}

fn put_head(addr: &str, target: &str, extra: &str) -> String {
    format!("PUT {target} HTTP/1.1\r\nhost: {addr}{extra}")
}

fn status(response: &str) -> u16 {
    response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .args(args)
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn of_fifty_concurrent_uploads_to_one_name_exactly_one_wins() {
    let u = Uploading::start("max_concurrent = 64");
    let link = u.link("/in/race.bin", &[]);
    let t = target(&link).to_owned();
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50u8)
            .map(|i| {
                let (addr, t) = (&u.addr, &t);
                s.spawn(move || {
                    let body = vec![i; 4096];
                    let head = put_head(addr, t, "\r\ncontent-length: 4096");
                    exchange(addr, &head, &body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let codes: Vec<u16> = answers.iter().map(|a| status(a)).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|&c| c == 201 || c == 409), "{codes:?}");
    // One whole upload's bytes, nothing mixed, no temporary left.
    let stored = std::fs::read(u.root.join("in/race.bin")).unwrap();
    assert_eq!(stored.len(), 4096);
    assert!(stored.iter().all(|&b| b == stored[0]));
    assert_eq!(u.names("in"), ["race.bin"]);
}

#[test]
fn oversize_is_413_before_any_byte_and_a_chunked_body_is_cut_off() {
    let u = Uploading::start("max_size = \"64K\"");
    let link = u.link("/in/big.bin", &["--max-size", "1K"]);
    let t = target(&link).to_owned();
    // Declared too large, with Expect: the refusal comes instead of 100.
    let head = put_head(
        &u.addr,
        &t,
        "\r\ncontent-length: 2048\r\nexpect: 100-continue",
    );
    let answer = exchange(&u.addr, &head, b"");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    // Chunked, with no length: cut off once past the limit.
    let head = put_head(&u.addr, &t, "\r\ntransfer-encoding: chunked");
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"200\r\n");
        body.extend_from_slice(&[b'x'; 512]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(&u.addr, &head, &body);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A client that keeps sending after the refusal still reads it (the
    // server drops what follows for a while before it closes, instead of
    // resetting the connection under the answer).
    for _ in 0..5 {
        let mut s = TcpStream::connect(&u.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = put_head(&u.addr, &t, "\r\ncontent-length: 8388608\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut writer = s.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            let chunk = [b'y'; 65536];
            for _ in 0..128 {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
        sending.join().unwrap();
    }
    // The server's own limit, for a link without one.
    let link = u.link("/in/big.bin", &[]);
    let big = u.dir.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 65 * 1024]).unwrap();
    let (code, _) = curl(&["-T", big.to_str().unwrap(), &link]);
    assert_eq!(code, 413);
    assert!(u.names("in").is_empty(), "{:?}", u.names("in"));
    // A refused link never gets 100 Continue either.
    let head = put_head(
        &u.addr,
        "/in/x.bin?mg_token=AAAA",
        "\r\ncontent-length: 10\r\nexpect: 100-continue",
    );
    let answer = exchange(&u.addr, &head, b"");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
}

#[test]
fn wrong_types_disguised_html_and_wrong_digests_are_refused_with_curl() {
    let u = Uploading::start("");
    let dir = u.dir.path();
    let jpeg = dir.join("a.jpg");
    std::fs::write(&jpeg, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00").unwrap();
    let html = dir.join("page.jpg");
    std::fs::write(&html, b"<!DOCTYPE html><script>alert(1)</script>").unwrap();
    let link = |p: &str| u.link(p, &["--content-type", "image/jpeg"]);
    let t = |p: &Path| p.to_str().unwrap().to_owned();
    let (code, _) = curl(&[
        "-T",
        &t(&jpeg),
        "-H",
        "content-type: image/png",
        &link("/in/1.jpg"),
    ]);
    assert_eq!(code, 415);
    let (code, _) = curl(&[
        "-T",
        &t(&html),
        "-H",
        "content-type: image/jpeg",
        &link("/in/2.jpg"),
    ]);
    assert_eq!(code, 415);
    let signed = u.link("/in/3.jpg", &["--sha256-of", &t(&jpeg)]);
    let (code, _) = curl(&["-T", &t(&html), &signed]);
    assert_eq!(code, 400);
    assert!(u.names("in").is_empty());
    let (code, _) = curl(&[
        "-T",
        &t(&jpeg),
        "-H",
        "content-type: image/jpeg",
        &link("/in/1.jpg"),
    ]);
    assert_eq!(code, 201);
    let (code, _) = curl(&["-T", &t(&jpeg), &signed]);
    assert_eq!(code, 201);
    assert_eq!(u.names("in"), ["1.jpg", "3.jpg"]);
}

#[test]
fn a_client_gone_mid_body_or_too_slow_leaves_nothing() {
    let u = Uploading::start("body_timeout = \"1s\"");
    let link = u.link("/in/gone.bin", &[]);
    let t = target(&link).to_owned();
    // Half the body, then the connection closes.
    let mut s = TcpStream::connect(&u.addr).unwrap();
    let head = put_head(&u.addr, &t, "\r\ncontent-length: 100000\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&[7u8; 50_000]).unwrap();
    drop(s);
    // Slow: some bytes, then nothing past the body timeout.
    let link2 = u.link("/in/slow.bin", &[]);
    let mut s = TcpStream::connect(&u.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = put_head(&u.addr, target(&link2), "\r\ncontent-length: 1000\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&[7u8; 10]).unwrap();
    // Until the server closes (read_to_end retries an interrupted read).
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(
        within(Duration::from_secs(5), || u.names("in").is_empty()),
        "{:?}",
        u.names("in")
    );
}

#[test]
fn a_server_killed_during_twenty_uploads_leaves_no_partial_file() {
    let mut u = Uploading::start("");
    // A named temporary from an earlier crash (where unnamed ones are not
    // supported): swept at the next start.
    std::fs::write(u.root.join("in/.mg-upload.1.2.3"), b"partial").unwrap();
    let links: Vec<String> = (0..20)
        .map(|i| u.link(&format!("/in/{i}.bin"), &[]))
        .collect();
    let addr = u.addr.clone();
    let clients: Vec<_> = links
        .iter()
        .map(|link| {
            let (addr, t) = (addr.clone(), target(link).to_owned());
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(&addr) else {
                    return;
                };
                let head = put_head(&addr, &t, "\r\ncontent-length: 10000000\r\n\r\n");
                let _ = s.write_all(head.as_bytes());
                for _ in 0..100 {
                    if s.write_all(&[3u8; 10_000]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut server = u.server.take().unwrap();
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for c in clients {
        c.join().unwrap();
    }
    u.restart();
    assert!(
        within(Duration::from_secs(5), || u.names("in").is_empty()),
        "{:?}",
        u.names("in")
    );
    // And the restarted server takes uploads.
    let (code, _) = curl(&["--data-binary", "x", "-X", "PUT", &u.link("/in/0.bin", &[])]);
    assert_eq!(code, 201);
}

#[test]
fn a_full_disk_is_507_and_nothing_partial() {
    let u = Uploading::start("");
    // The file-size limit of the server process stands in for a full
    // file system: its writes past 64 KiB fail as a full disk's do.
    let pid = rustix::process::Pid::from_raw(u.server.as_ref().unwrap().id() as i32);
    rustix::process::prlimit(
        pid,
        rustix::process::Resource::Fsize,
        rustix::process::Rlimit {
            current: Some(64 << 10),
            maximum: None,
        },
    )
    .unwrap();
    let big = u.dir.path().join("big.bin");
    std::fs::write(&big, vec![5u8; 1 << 20]).unwrap();
    let (code, _) = curl(&["-T", big.to_str().unwrap(), &u.link("/in/big.bin", &[])]);
    assert_eq!(code, 507);
    assert!(u.names("in").is_empty(), "{:?}", u.names("in"));
    // A small one still fits, and the server lives.
    let (code, _) = curl(&[
        "--data-binary",
        "ok",
        "-X",
        "PUT",
        &u.link("/in/small.bin", &[]),
    ]);
    assert_eq!(code, 201);
}

#[test]
fn traversal_and_symlinked_parents_never_write_outside_the_root() {
    let u = Uploading::start("create_dirs = true");
    let outside = u.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, u.root.join("in/out")).unwrap();
    // A prefix link over the whole root, the strongest a client could hold.
    let root_link = sign_for_7(&u.keys, &["--path", "/", "--prefix", "--methods", "PUT"]);
    let token = root_link.split("mg_token=").nth(1).unwrap().to_owned();
    let corpus = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/traversal-public.txt"),
    )
    .unwrap_or_default();
    let mut payloads: Vec<String> = corpus
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && l.is_ascii())
        .filter(|l| !l.bytes().any(|b| b.is_ascii_control() || b == b' '))
        .map(|l| {
            if l.starts_with('/') {
                l.to_owned()
            } else {
                format!("/{l}")
            }
        })
        .take(200)
        .collect();
    payloads.extend(
        [
            "/../x",
            "/%2e%2e/x",
            "/in/out/x",
            "/in/out/new/x",
            "/in/..%2fx",
            "/in/%2e%2e/x",
        ]
        .map(String::from),
    );
    for p in &payloads {
        let sep = if p.contains('?') { '&' } else { '?' };
        let head = put_head(
            &u.addr,
            &format!("{p}{sep}mg_token={token}"),
            "\r\ncontent-length: 1",
        );
        let answer = exchange(&u.addr, &head, b"x");
        let code = status(&answer);
        assert!(code != 500 && code != 0, "{p}: {answer}");
    }
    assert!(names(&outside).is_empty(), "{:?}", names(&outside));
    assert!(!u.dir.path().join("x").exists());
    let _ = std::fs::remove_file(u.root.join("in/out"));
}

#[test]
fn a_download_right_after_an_upload_gets_the_new_version() {
    let u = Uploading::start("");
    let base = format!("http://{}", u.addr);
    let get = sign_for_7(&u.keys, &["--path", "/in/doc.txt", "--base-url", &base]);
    let put = u.link("/in/doc.txt", &["--replace"]);
    for version in 0..20 {
        let body = format!("version {version}");
        let (code, _) = curl(&["--data-binary", &body, "-X", "PUT", &put]);
        assert!(code == 201 || code == 204, "{code}");
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", &get])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    }
}

#[test]
fn uploads_work_over_http2_too() {
    let u = Uploading::start("");
    let file = u.dir.path().join("h2.bin");
    std::fs::write(&file, vec![9u8; 300_000]).unwrap();
    let f = file.to_str().unwrap();
    let h2 = "--http2-prior-knowledge";
    let (code, _) = curl(&[h2, "-T", f, &u.link("/in/h2.bin", &[])]);
    assert_eq!(code, 201);
    assert_eq!(
        std::fs::read(u.root.join("in/h2.bin")).unwrap().len(),
        300_000
    );
    // Refused before its body is read: the rest is read and dropped, so
    // the stream ends cleanly and the client reads the answer.
    for _ in 0..10 {
        let (code, _) = curl(&[h2, "-T", f, &u.link("/in/h2.bin", &[])]);
        assert_eq!(code, 409);
    }
    let (code, _) = curl(&[h2, "-T", f, &u.link("/in/small.bin", &["--max-size", "1K"])]);
    assert_eq!(code, 413);
    assert_eq!(u.names("in"), ["h2.bin"]);
}

#[test]
fn a_sent_content_digest_a_put_preflight_and_the_access_log_line() {
    let u = Uploading::start_with("cors_origins = [\"https://app.example\"]", "");
    // The preflight of a page on a listed origin allows PUT and its headers.
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "OPTIONS",
            "--max-time",
            "10",
        ])
        .args(["-H", "origin: https://app.example"])
        .args(["-H", "access-control-request-method: PUT"])
        .args([
            "-H",
            "access-control-request-headers: content-type, content-digest",
        ])
        .arg(format!("http://{}/in/x.jpg", u.addr))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 204"), "{head}");
    assert!(
        head.contains("access-control-allow-methods: get, head, put"),
        "{head}"
    );
    assert!(head.contains("content-digest"), "{head}");
    // Content-Digest (RFC 9530), the SHA-256 of "hello".
    let digest = "content-digest: sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:";
    let put = |body: &str| {
        let link = u.link("/in/d.txt", &[]);
        curl(&["--data-binary", body, "-X", "PUT", "-H", digest, &link]).0
    };
    let log = u.log.as_ref().unwrap();
    assert_eq!(put("hellO"), 400);
    let line = line_with(log, &["method=PUT", "status=400"]).unwrap();
    assert!(line.contains("reason=\"digest_mismatch\""), "{line}");
    assert!(line.contains("received=5"), "{line}");
    assert!(u.names("in").is_empty());
    assert_eq!(put("hello"), 201);
    let line = line_with(log, &["method=PUT", "status=201"]).unwrap();
    assert!(
        line.contains("received=5") && line.contains("user=\"7\""),
        "{line}"
    );
    assert_eq!(std::fs::read(u.root.join("in/d.txt")).unwrap(), b"hello");
}
