//! Hostile HTTP: connection floods, clients that vanish mid-stream, range
//! abuse, files that change while they are sent. Against the real server.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, parse, raw, send_raw};
use mediagate_verifier::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_is_capped_and_timed_out() {
    let config = ServerConfig::default()
        .with_max_connections(200)
        .with_header_read_timeout(Duration::from_millis(800));
    let s = TestServer::start_with(|b| b, config).await;
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // The server stays responsive: the idle connections are cut off at the
    // header timeout, and the queued request is then served.
    let started = Instant::now();
    let r = s.get(&s.target("/pub/a.txt"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Every idle connection is eventually closed by the server.
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut c in idle {
        let mut buf = [0u8; 64];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, c.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "an idle connection stayed open"
        );
    }
    s.shutdown().await.unwrap();
}

/// At the connection cap, a newcomer does not wait out the header timeout
/// (10 s here) behind connections that send nothing, trickle a head, or
/// idle between requests: the one idle longest gives way. Responses in
/// progress are never cut: downloads holding every other slot finish
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_idle_connections_give_way_to_newcomers() {
    const CAP: usize = 8;
    let config = ServerConfig::default().with_max_connections(CAP);
    let s = TestServer::start_with(|b| b, config).await;
    let quickly = Duration::from_secs(3);
    let served = |s: &TestServer| {
        let target = s.target("/pub/a.txt");
        let addr = s.addr;
        async move {
            let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let started = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(9), raw(addr, request.as_bytes()))
                .await
                .expect("served before the header timeout");
            (r.status, started.elapsed())
        }
    };
    // Connections that send nothing fill every slot.
    let mut silent = Vec::new();
    for _ in 0..CAP {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, took) = served(&s).await;
    assert_eq!(status, 200);
    assert!(took < quickly, "{took:?}");
    drop(silent);
    // Slowloris: heads trickled a byte at a time.
    let mut trickling = Vec::new();
    for _ in 0..CAP {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /media/pub/a.txt HTTP/1.1\r\nHost")
            .await
            .unwrap();
        trickling.push(tokio::spawn(async move {
            for _ in 0..100 {
                if c.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, took) = served(&s).await;
    assert_eq!(status, 200);
    assert!(took < quickly, "{took:?}");
    for t in trickling {
        t.abort();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Downloads in progress on every slot but one, which idles kept alive
    // after a request: the idle one gives way, no download is cut. (A file
    // larger than what the socket buffers take, so that each response stays
    // in progress while its client does not read.)
    const HUGE: u64 = 64 << 20;
    std::fs::File::create(s.root.join("huge.bin"))
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    let big = s.target("/huge.bin");
    let mut downloads = Vec::new();
    for _ in 0..CAP - 1 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(
            format!("GET {big} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        // Reads a little, then stops: the response stays in progress.
        let mut head = vec![0u8; 1024];
        c.read_exact(&mut head).await.unwrap();
        downloads.push((c, head));
    }
    let mut kept = TcpStream::connect(s.addr).await.unwrap();
    let small = s.target("/pub/a.txt");
    kept.write_all(format!("GET {small} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    assert!(kept.read(&mut answer).await.unwrap() > 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, took) = served(&s).await;
    assert_eq!(status, 200);
    assert!(took < quickly, "{took:?}");
    // The kept-alive one was closed for it; every download is whole.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), kept.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "the idle connection was closed"
    );
    for (mut c, head) in downloads {
        let mut all = head;
        tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut all))
            .await
            .unwrap()
            .unwrap();
        let r = common::parse(&all);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len() as u64, HUGE, "a download was cut");
        assert!(r.body.iter().all(|&b| b == 0));
    }
    s.shutdown().await.unwrap();
}

/// The same over HTTP/2: connections idle after their streams, or with no
/// stream yet, give way at the cap (through GOAWAY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_idle_http2_connections_give_way() {
    use http_body_util::Empty;
    let config = ServerConfig::default().with_max_connections(2);
    let s = TestServer::start_with(|b| b, config).await;
    let uri = format!("http://{}{}", s.addr, s.target("/pub/a.txt"));
    // One answers a request and idles; the other has sent only the preface.
    let mut used = common::http2_sender(TcpStream::connect(s.addr).await.unwrap()).await;
    let request = http::Request::get(&uri).body(Empty::<bytes::Bytes>::new());
    let res = used.send_request(request.unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    drop(res);
    let _fresh = common::http2_sender(TcpStream::connect(s.addr).await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let target = s.target("/pub/a.txt");
    for _ in 0..2 {
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(9), raw(s.addr, request.as_bytes()))
            .await
            .expect("served before the header timeout");
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    s.shutdown().await.unwrap();
}

/// Bytes that cannot start an HTTP request (a TLS handshake sent to the
/// plain-text port, binary noise) are refused with a 400 at once, not left
/// to wait out the header timeout for a head that never ends.
#[tokio::test]
async fn a_tls_handshake_or_noise_is_refused_at_once() {
    let config = ServerConfig::default().with_header_read_timeout(Duration::from_secs(30));
    let s = TestServer::start_with(|b| b, config).await;
    let client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x11";
    for noise in [
        &client_hello[..],
        b"\0\0\0\0",
        b"\r\nGE\x7fT / HTTP/1.1\r\n",
    ] {
        let started = Instant::now();
        let mut buf = Vec::new();
        let closed = send_raw(s.addr, noise, &mut buf, Duration::from_secs(5)).await;
        assert!(closed, "{noise:?}: still open after 5 s");
        assert_eq!(parse(&buf).status, 400, "{noise:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{noise:?}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_stream_leak_no_descriptors() {
    for sendfile in [true, false] {
        clients_vanishing_mid_stream(ServerConfig::default().with_sendfile(sendfile)).await;
    }
}

async fn clients_vanishing_mid_stream(config: ServerConfig) {
    let s = TestServer::start_with(|b| b.chunk_size(16 * 1024), config).await;
    let target = s.target("/big.bin");
    // Warm up (the runtime's own descriptors), then measure.
    let _ = s.get(&s.target("/pub/a.txt"), &[]).await;
    let baseline = open_fds();
    for round in 0..10 {
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let addr = s.addr;
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut buf = vec![0u8; 8192];
                let _ = c.read(&mut buf).await;
                // Drop: the client disappears with the body half sent.
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let _ = round;
    }
    // Descriptors return to the baseline once the server notices.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_fds();
        if now <= baseline + 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "descriptors leaked: {baseline} -> {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.get(&s.target("/pub/a.txt"), &[]).await.status, 200);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn range_abuse_never_amplifies() {
    let s = TestServer::start().await;
    let t = s.target("/big.bin");
    // Apache Killer (CVE-2011-3192): many overlapping ranges.
    let killer = format!(
        "bytes=0-,{}",
        (0..1300)
            .map(|i| format!("5-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let r = s.get(&t, &[("Range", &killer)]).await;
    assert!(r.status == 200 || r.status == 431, "{}", r.status);
    assert!(r.raw_len < 3_000_000 + 4096, "no amplification");
    for h in [
        "bytes=0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0",
        "bytes=2999999-0",
        "bytes=-18446744073709551616",
        "bytes=18446744073709551615-18446744073709551615",
        "bytes=1-2, 0-",
        "bytes= -1",
        "bytes=0-1;q=2",
        "bytes=\u{0}",
    ] {
        let r = s.get(&t, &[("Range", h)]).await;
        assert!(r.status < 500, "{h:?} -> {}", r.status);
        assert!(r.raw_len < 3_000_000 + 4096, "{h:?}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_headers_never_5xx() {
    let s = TestServer::start().await;
    let t = s.target("/pub/a.txt");
    let garbage = [
        ("If-None-Match", "\u{1}\u{2}"),
        ("If-None-Match", "W/"),
        ("If-None-Match", "\"unterminated"),
        ("If-Match", ",,,,"),
        ("If-Modified-Since", "Mon, 99 Foo 9999 99:99:99 GMT"),
        ("If-Unmodified-Since", "-1"),
        ("If-Range", "W/\"x\""),
        ("If-Range", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("Cookie", "mg_token"),
        ("Cookie", "=;=;=;;"),
        ("X-Forwarded-For", "not an ip, also not"),
        ("Accept-Encoding", "gzip;q=x"),
    ];
    for (name, value) in garbage {
        let r = s.get(&t, &[(name, value)]).await;
        assert!(r.status < 500, "{name}: {value:?} -> {}", r.status);
    }
    // Invalid bytes in header values: hyper refuses the request with a 400.
    let r = raw(
        s.addr,
        format!(
            "GET {t} HTTP/1.1\r\nHost: x\r\nIf-Match: \u{7f}\u{0}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(r.status < 500);
    s.shutdown().await.unwrap();
}

/// Sends a request for `target` and reads the head plus `prefix` body bytes.
async fn start_download(
    addr: std::net::SocketAddr,
    target: &str,
    prefix: usize,
) -> (TcpStream, Vec<u8>) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while got.len() < prefix {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    (c, got)
}

#[tokio::test]
async fn files_replaced_or_grown_while_streaming_stay_consistent() {
    for sendfile in [true, false] {
        replaced_or_grown_while_streaming(ServerConfig::default().with_sendfile(sendfile)).await;
    }
}

async fn replaced_or_grown_while_streaming(config: ServerConfig) {
    let s = TestServer::start_with(|b| b.chunk_size(64 * 1024), config).await;
    // 64 MiB of a known pattern, so that the download is still running.
    const LEN: usize = 64 << 20;
    let pattern: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
    std::fs::write(s.root.join("stream.bin"), &pattern).unwrap();
    let target = s.target("/stream.bin");

    // Replaced by rename: the download in flight keeps the old bytes.
    let (mut c, mut got) = start_download(s.addr, &target, 1024).await;
    std::fs::write(s.root.join("next.bin"), vec![0xEEu8; LEN]).unwrap();
    std::fs::rename(s.root.join("next.bin"), s.root.join("stream.bin")).unwrap();
    c.read_to_end(&mut got).await.unwrap();
    let r = common::parse(&got);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), LEN);
    assert!(
        r.body == pattern,
        "a renamed-over file must not mix versions"
    );

    // Grown while streaming: never more than the promised length, and,
    // since an append cannot be told from a rewrite by the file's times,
    // cut short rather than claimed complete (the client fetches the new
    // version); what was sent is the old version's prefix.
    std::fs::write(s.root.join("grow.bin"), &pattern).unwrap();
    let target = s.target("/grow.bin");
    let (mut c, mut got) = start_download(s.addr, &target, 1024).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.root.join("grow.bin"))
        .unwrap();
    std::io::Write::write_all(&mut f, &[1u8; 1 << 20]).unwrap();
    let _ = c.read_to_end(&mut got).await;
    let r = common::parse(&got);
    assert_eq!(r.header("content-length"), Some(LEN.to_string().as_str()));
    assert!(r.body.len() < LEN);
    assert!(r.body[..] == pattern[..r.body.len()]);
    s.shutdown().await.unwrap();
}

/// A file rewritten in place while it is sent (`cp new.bin served.bin`:
/// truncated, then written; or overwritten without truncation) must never
/// arrive as a whole response: the connection (HTTP/1) or the stream
/// (HTTP/2) ends before the promised length, so no cache keeps a body
/// that mixes two versions under one strong ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_rewritten_in_place_while_streaming_are_never_sent_whole() {
    const LEN: usize = 16 << 20;
    let pattern: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
    for sendfile in [true, false] {
        let config = ServerConfig::default().with_sendfile(sendfile);
        let s = TestServer::start_with(|b| b.chunk_size(64 * 1024), config).await;
        for truncate in [true, false] {
            let path = s.root.join("torn.bin");
            std::fs::write(&path, &pattern).unwrap();
            let target = s.target("/torn.bin");
            let (mut c, mut got) = start_download(s.addr, &target, 1024).await;
            // File times tick in jiffies: let the rewrite land in another.
            tokio::time::sleep(Duration::from_millis(20)).await;
            rewrite(&path, truncate);
            let _ = c.read_to_end(&mut got).await;
            let r = common::parse(&got);
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some(LEN.to_string().as_str()));
            assert!(
                r.body.len() < LEN,
                "sendfile {sendfile}, truncate {truncate}: sent whole"
            );
        }
        s.shutdown().await.unwrap();
    }
    // HTTP/2: the stream is reset.
    let s = TestServer::start().await;
    let path = s.root.join("torn.bin");
    std::fs::write(&path, &pattern).unwrap();
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let mut sender = common::http2_sender(stream).await;
    let uri = format!("http://x{}", s.target("/torn.bin"));
    let req = http::Request::get(uri).body(http_body_util::Empty::<bytes::Bytes>::new());
    let res = sender.send_request(req.unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    rewrite(&path, false);
    let body = http_body_util::BodyExt::collect(res.into_body()).await;
    assert!(
        body.is_err(),
        "an HTTP/2 stream of a rewritten file ends in a reset"
    );
    s.shutdown().await.unwrap();
}

/// Rewrites `path` with other bytes of the same length: as `cp` does
/// (truncate, then write), or in place.
fn rewrite(path: &std::path::Path, truncate: bool) {
    use std::os::unix::fs::FileExt as _;
    let len = std::fs::metadata(path).unwrap().len() as usize;
    if truncate {
        std::fs::write(path, vec![0xEEu8; len]).unwrap();
    } else {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(&vec![0xEEu8; len], 0).unwrap();
    }
}

/// Many responses at once from one kept descriptor (the file cache's) must
/// not disturb each other: every read names its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ranges_from_one_kept_descriptor_are_each_exact() {
    for sendfile in [true, false] {
        let s =
            TestServer::start_with(|b| b, ServerConfig::default().with_sendfile(sendfile)).await;
        const LEN: usize = 4 << 20;
        let pattern: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        std::fs::write(s.root.join("shared.bin"), &pattern).unwrap();
        let target = s.target("/shared.bin");
        // Opened once and kept, then shared by all the requests below.
        assert_eq!(s.request("HEAD", &target, &[]).await.status, 200);
        let mut tasks = Vec::new();
        for i in 0..48usize {
            // Ranges of different sizes and places, and whole files.
            let range = match i % 3 {
                0 => None,
                1 => Some((i * 40_000, i * 40_000 + 300_000)),
                _ => Some((LEN - 1 - i * 1_000 - 70_000, LEN - 1 - i * 1_000)),
            };
            let (addr, target) = (s.addr, target.clone());
            tasks.push(tokio::spawn(async move {
                let mut req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
                if let Some((a, b)) = range {
                    req.push_str(&format!("Range: bytes={a}-{b}\r\n"));
                }
                req.push_str("\r\n");
                (range, raw(addr, req.as_bytes()).await)
            }));
        }
        for t in tasks {
            let (range, r) = t.await.unwrap();
            match range {
                None => {
                    assert_eq!(r.status, 200);
                    assert!(r.body == pattern, "whole file differs");
                }
                Some((a, b)) => {
                    assert_eq!(r.status, 206);
                    assert!(r.body == pattern[a..=b], "range {a}-{b} differs");
                }
            }
        }
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn many_requests_on_one_keep_alive_connection() {
    let s = TestServer::start().await;
    let t = s.target("/pub/a.txt");
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    // Pipelined: 50 requests in one write.
    let one = format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut all = one.repeat(49);
    all.push_str(&format!(
        "GET {t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    c.write_all(all.as_bytes()).await.unwrap();
    let out = common::read_to_eof(&mut c, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 50);
    assert_eq!(text.matches("hello world\n").count(), 50);
    s.shutdown().await.unwrap();
}

/// Connects with a small receive buffer (so that little of a response fits
/// in flight), asks for `target`, and waits `pause` before reading it all;
/// the bytes received, until the server ended the connection.
async fn read_after_a_pause(addr: std::net::SocketAddr, target: &str, pause: Duration) -> usize {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(addr).await.unwrap();
    c.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(pause).await;
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the connection neither sent nor ended for 20 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_cut_off_at_the_send_timeout() {
    for sendfile in [true, false] {
        let config = ServerConfig::default()
            .with_sendfile(sendfile)
            .with_send_timeout(Duration::from_millis(600));
        let s = TestServer::start_with(|b| b, config).await;
        // Far more than the socket buffers of both ends hold.
        let len = 64u64 << 20;
        std::fs::File::create(s.root.join("huge.bin"))
            .unwrap()
            .set_len(len)
            .unwrap();
        let target = s.target("/huge.bin");
        // A pause shorter than the timeout loses nothing.
        let whole = read_after_a_pause(s.addr, &target, Duration::from_millis(200)).await;
        assert!(whole as u64 > len, "sendfile {sendfile}: {whole} bytes");
        // A client that accepts nothing for longer is cut off: it gets what
        // was in flight, then the end of the connection (the server closed
        // its socket; the descriptor count of this process is no measure,
        // as the other tests run beside this one).
        let cut = read_after_a_pause(s.addr, &target, Duration::from_millis(2500)).await;
        assert!((cut as u64) < len / 2, "sendfile {sendfile}: {cut} bytes");
        s.shutdown().await.unwrap();
    }
}

/// An HTTP/2 (prior knowledge) client connection to `s` with the given
/// stream window; the request sender and the connection's task.
async fn http2_client(
    s: &TestServer,
    window: u32,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(conn))
}

/// GET `path` with a fresh link over `sender`.
async fn http2_get(
    s: &TestServer,
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let uri = format!("http://{}{}", s.addr, s.target(path));
    let req = http::Request::get(uri)
        .body(http_body_util::Empty::new())
        .unwrap();
    sender.send_request(req).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_whose_window_never_opens_are_cut_off_at_the_send_timeout() {
    use http_body_util::BodyExt;
    let config = ServerConfig::default().with_send_timeout(Duration::from_millis(600));
    let s = TestServer::start_with(|b| b, config).await;
    // A client that reads gets the whole file, however long it takes.
    let (mut sender, _conn) = http2_client(&s, 65_535).await;
    let res = http2_get(&s, &mut sender, "/big.bin").await;
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 3_000_000);
    // A stream window of zero: the server may send headers, never data.
    let (mut sender, conn) = http2_client(&s, 0).await;
    let res = http2_get(&s, &mut sender, "/big.bin").await;
    assert_eq!(res.status(), 200);
    // The server gives up on the stalled response: the body ends in an
    // error and the connection closes, well before this test's limit.
    let mut body = res.into_body();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                other => return other.map(|r| r.map(|_| ())),
            }
        }
    })
    .await;
    assert!(
        matches!(ended, Ok(Some(Err(_)))),
        "the stalled stream was kept: {ended:?}"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(closed.is_ok(), "the connection stayed open");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_at_the_keep_alive_timeout() {
    let config = ServerConfig::default().with_keep_alive_timeout(Duration::from_millis(600));
    let s = TestServer::start_with(|b| b, config).await;
    let (mut sender, conn) = http2_client(&s, 65_535).await;
    // Requests a little apart keep the connection.
    for _ in 0..4 {
        let res = http2_get(&s, &mut sender, "/pub/a.txt").await;
        assert_eq!(res.status(), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!conn.is_finished());
    // Then nothing: the server closes it (hyper alone would keep it while
    // its pings are answered).
    let closed = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stayed open");
    s.shutdown().await.unwrap();
}
