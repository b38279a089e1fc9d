//! A connection's last response is written to leave with the FIN that
//! follows it: it must still arrive whole and at once, in every way a
//! connection can end after it, and a response that is not the last must
//! never wait for a FIN.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` on a new connection and reads to the end, which must
/// come within a second: what arrived.
async fn to_the_end(s: &TestServer, request: &str) -> Vec<u8> {
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let all = common::read_to_eof(&mut c, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{request:?}: ended after {:?}",
        started.elapsed()
    );
    all
}

/// The responses in `all`, one after another, each body cut at its
/// Content-Length (none for a response to HEAD, `head_only`).
fn responses(all: &[u8], head_only: bool) -> Vec<common::Response> {
    let mut out = Vec::new();
    let mut rest = all;
    while !rest.is_empty() {
        let mut r = common::parse(rest);
        let head = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let len: usize = match r.header("content-length") {
            Some(n) if !head_only => n.parse().unwrap(),
            _ => 0,
        };
        assert!(
            r.body.len() >= len,
            "a body cut short: {} of {len}",
            r.body.len()
        );
        r.body.truncate(len);
        rest = &rest[head + len..];
        out.push(r);
    }
    out
}

#[tokio::test]
async fn the_last_response_arrives_whole_then_the_end() {
    let s = TestServer::start().await;
    let small = s.target("/pub/a.txt");
    let big = s.target("/big.bin");
    let cases = [
        // Asked to close, in the ways a client may say it.
        format!("GET {small} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        format!("GET {small} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n"),
        format!("GET {small} HTTP/1.0\r\n\r\n"),
        // A large file (sent with sendfile) as the last response.
        format!("GET {big} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        // A refusal as the last response.
        "GET /media/pub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        // A HEAD: a last response without a body.
        format!("HEAD {small} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ];
    for request in &cases {
        let all = to_the_end(&s, request).await;
        let got = responses(&all, request.starts_with("HEAD"));
        assert_eq!(got.len(), 1, "{request:?}");
        let r = &got[0];
        match r.status {
            200 if request.starts_with("HEAD") => assert!(r.body.is_empty()),
            200 if request.contains("big.bin") => assert_eq!(r.body.len(), 3_000_000),
            200 => assert_eq!(r.body, b"hello world\n", "{request:?}"),
            status => assert!((400..500).contains(&status), "{request:?}: {status}"),
        }
    }
}

#[tokio::test]
async fn pipelined_requests_before_the_last_all_arrive() {
    let s = TestServer::start().await;
    let a = s.target("/pub/a.txt");
    let request = format!(
        "GET {a} HTTP/1.1\r\nHost: x\r\n\r\nGET {a} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {a} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
         GET {a} HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let all = to_the_end(&s, &request).await;
    let got = responses(&all, false);
    // The fourth request comes after the last exchange: never answered.
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world\n"[..]));
    }
}

/// A request with a body the server does not read, on a connection asked
/// to close: the response still arrives whole (a reset may follow it),
/// whether the body came with the head, so that the socket closes with
/// bytes unread (a close then sends a reset, which must not take the
/// response still held for the FIN with it), or after the answer.
#[tokio::test]
async fn the_last_response_survives_a_body_it_did_not_read() {
    let s = TestServer::start().await;
    let a = s.target("/pub/a.txt");
    for late in [false, true] {
        for _ in 0..20 {
            let head = format!(
                "GET {a} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n"
            );
            let mut c = TcpStream::connect(s.addr).await.unwrap();
            if late {
                c.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            } else {
                let mut all = head.into_bytes();
                all.extend_from_slice(&[b'x'; 100_000][..60_000]);
                c.write_all(&all).await.unwrap();
            }
            // May fail: the server is free to stop reading.
            let _ = c.write_all(&[b'x'; 100_000]).await;
            let mut all = Vec::new();
            // The end, or a reset after the response: either way it is read.
            let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut all)).await;
            assert!(!all.is_empty(), "late body {late}: the response was lost");
            let got = responses(&all, false);
            assert_eq!(got.len(), 1);
            assert_eq!(
                (got[0].status, got[0].body.as_slice()),
                (200, &b"hello world\n"[..])
            );
        }
    }
}

/// Responses on a connection that stays open arrive without the client
/// closing anything: none waits for a FIN that is not coming (a held
/// segment goes out on a timer, some 200 ms later: twenty requests
/// would take seconds).
#[tokio::test]
async fn a_kept_alive_response_never_waits_for_the_end() {
    let s = TestServer::start().await;
    let a = s.target("/pub/a.txt");
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        let started = Instant::now();
        for _ in 0..20 {
            let request = format!("GET {a} {version}\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
            c.write_all(request.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.ends_with(b"hello world\n") {
                let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut chunk))
                    .await
                    .expect("the response without waiting")
                    .unwrap();
                assert!(n > 0, "{version}: closed");
                buf.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(common::parse(&buf).status, 200);
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{version}: 20 requests took {took:?}"
        );
    }
}
