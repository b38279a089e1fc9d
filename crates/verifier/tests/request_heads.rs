//! Request heads as the bundled server reads them off the wire, before any
//! parser: raw `#` in a target, request lines and heads over the limits,
//! empty lines before a request, and HTTP/2 authority disagreements. Each
//! refusal names its reason in the body and in `mediagate-reason`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, parse, raw, send_raw};
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn refused(res: &common::Response, status: u16, code: &str) {
    assert_eq!(res.status, status, "{}", res.text());
    assert_eq!(res.text(), format!("{code}\n"));
    assert_eq!(res.header("mediagate-reason"), Some(code));
    assert_eq!(res.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_raw_hash_in_the_target_is_refused_not_cut_off() {
    let s = TestServer::start().await;
    let token = s.token("/pub/a.txt");
    for target in [
        // A proxy in front would read two tokens here; the URI parser one.
        format!("/pub/a.txt?mg_token={token}#&mg_token=AAAA"),
        // And here a path outside the one served.
        format!("/pub/a.txt#/../../secret.txt?mg_token={token}"),
        format!("/pub/a.txt?mg_token={token}#"),
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        refused(&raw(s.addr, req.as_bytes()).await, 400, "bad_target");
    }
    // Escaped, it is an ordinary byte of the path (no such file here).
    let escaped = s.target("/pub/a#b.txt");
    assert!(escaped.contains("a%23b.txt"), "{escaped}");
    let req = format!("GET {escaped} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(s.addr, req.as_bytes()).await.status, 404);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_head_later_on_a_kept_alive_connection_is_answered_in_order() {
    let s = TestServer::start().await;
    let good = s.target("/pub/a.txt");
    let bad = format!("{good}#x");
    // Pipelined: two good requests, a bad one, and one after it that is
    // never read.
    let pipeline = format!(
        "GET {good} HTTP/1.1\r\nHost: x\r\n\r\nHEAD {good} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {bad} HTTP/1.1\r\nHost: x\r\n\r\nGET {good} HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let mut buf = Vec::new();
    let closed = send_raw(
        s.addr,
        pipeline.as_bytes(),
        &mut buf,
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "the connection closes after the refusal");
    let text = String::from_utf8_lossy(&buf);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "400"], "{text}");
    assert!(text.ends_with("bad_target\n"), "{text}");
    // The same with the bad head arriving in pieces, after a good request.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("GET {good} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = c.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    for piece in ["GET /pub/a.txt?mg_", "token=x", "#y HTTP/1.1\r\n"] {
        c.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rest = common::read_to_eof(&mut c, Duration::from_secs(5)).await;
    refused(&parse(&rest), 400, "bad_target");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn overlong_targets_and_heads_are_refused_with_their_reason() {
    let s = TestServer::start().await;
    let long_target = format!("/pub/{}", "a".repeat(9000));
    let req = format!("GET {long_target} HTTP/1.1\r\nHost: x\r\n\r\n");
    refused(&raw(s.addr, req.as_bytes()).await, 414, "uri_too_long");
    let big_field = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    refused(
        &raw(s.addr, big_field.as_bytes()).await,
        431,
        "head_too_large",
    );
    // On a kept-alive connection too, after a first request.
    let good = s.target("/pub/a.txt");
    let req = format!("GET {good} HTTP/1.1\r\nHost: x\r\n\r\nGET {long_target} HTTP/1.1\r\n");
    let mut buf = Vec::new();
    send_raw(s.addr, req.as_bytes(), &mut buf, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("HTTP/1.1 414") && text.ends_with("uri_too_long\n"),
        "{text}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_few_empty_lines_before_a_request_are_skipped_and_more_are_refused() {
    let s = TestServer::start().await;
    let good = s.target("/pub/a.txt");
    let req = format!("\r\n\r\nGET {good} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let res = raw(s.addr, req.as_bytes()).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello world\n");
    let req = format!("{}GET {good} HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n".repeat(5));
    refused(&raw(s.addr, req.as_bytes()).await, 400, "malformed_request");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn empty_lines_do_not_restart_the_header_timeout() {
    let config = mediagate_verifier::ServerConfig::default()
        .with_header_read_timeout(Duration::from_millis(800));
    let s = TestServer::start_with(|b| b, config).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let waited = empty_lines_then_a_trickle(&mut c).await;
    assert!(
        waited < Duration::from_millis(2500),
        "closed after {waited:?}"
    );
    // The same on a kept-alive connection: counted from the end of the
    // previous response.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let good = s.target("/pub/a.txt");
    c.write_all(format!("GET {good} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = c.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let waited = empty_lines_then_a_trickle(&mut c).await;
    assert!(
        waited < Duration::from_millis(2500),
        "kept alive: closed after {waited:?}"
    );
    s.shutdown().await.unwrap();
}

/// Sends empty lines, then a head a byte every 100 ms, far longer than the
/// header timeout; how long until the server closed the connection.
async fn empty_lines_then_a_trickle(c: &mut TcpStream) -> Duration {
    let started = Instant::now();
    c.write_all(b"\r\n\r\n").await.unwrap();
    let trickle = async {
        for b in b"GET /pub/a.txt HTTP/1.1\r\nHost: x\r\n" {
            if c.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
    started.elapsed()
}

#[tokio::test]
async fn an_http2_authority_and_a_different_host_are_refused() {
    let s = TestServer::start().await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let mut sender = common::http2_sender(stream).await;
    let target = s.target("/pub/a.txt");
    for (host, status) in [
        (None, 200),
        (Some("media.example"), 200),
        (Some("evil.example"), 400),
    ] {
        let mut req = http::Request::get(format!("http://media.example{target}"));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let res = sender
            .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{host:?}");
        if status == 400 {
            assert_eq!(res.headers()["mediagate-reason"], "bad_host");
        }
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_head_request_names_its_reason_in_a_header() {
    let s = TestServer::start().await;
    for (target, status, code) in [
        ("/media/pub/a.txt".to_owned(), 403, "missing_token"),
        (
            format!("/media/pub/a.txt?mg_token={}", "A".repeat(10)),
            403,
            "malformed_token",
        ),
        (s.target("/pub/nope.txt"), 404, "not_found"),
    ] {
        let res = s.request("HEAD", &target, &[]).await;
        assert_eq!(res.status, status);
        assert!(res.body.is_empty());
        assert_eq!(res.header("mediagate-reason"), Some(code));
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_sending_only_empty_lines_give_way_at_the_cap() {
    let config = mediagate_verifier::ServerConfig::default()
        .with_max_connections(4)
        .with_header_read_timeout(Duration::from_secs(10));
    let s = TestServer::start_with(|b| b, config).await;
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"\r\n\r\nGET /").await.unwrap();
        holders.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let target = s.target("/pub/a.txt");
    for _ in 0..4 {
        let started = Instant::now();
        let res = s.get(&target, &[]).await;
        assert_eq!(res.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    drop(holders);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_escaped_path_form_marker_is_refused_not_served_as_a_file() {
    let s = TestServer::start().await;
    // A file that a prefix link for the whole root would otherwise cover.
    std::fs::create_dir_all(s.root.join("_mg/T")).unwrap();
    std::fs::write(s.root.join("_mg/T/a.txt"), "reserved").unwrap();
    let everything = s.link("/").url("/media").unwrap();
    let query = everything.split_once('?').unwrap().1;
    for path in ["/%5Fmg/T/a.txt", "/%5fmg/T/a.txt", "/_m%67/T/a.txt"] {
        let res = s.get(&format!("/media{path}?{query}"), &[]).await;
        assert_eq!(res.status, 400, "{path}");
        assert_eq!(res.header("mediagate-reason"), Some("bad_path"), "{path}");
    }
    // The marker itself, unescaped, is the path form: T is no token.
    let res = s.get(&format!("/media/_mg/T/a.txt?{query}"), &[]).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.header("mediagate-reason"), Some("ambiguous_token"));
    s.shutdown().await.unwrap();
}
