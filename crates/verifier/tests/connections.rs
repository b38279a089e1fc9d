//! Connections: PROXY protocol, header timeouts, head size and Host rules, odd targets, HTTP/2 detection and graceful shutdown.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{TestServer, raw};
use mediagate_verifier::ServerConfig;

/// Sends `bytes` from the local address `from` to `addr`, in pieces of at
/// most `piece` bytes, and reads until the server closes; the raw answer.
async fn send_from(
    from: [u8; 4],
    addr: std::net::SocketAddr,
    bytes: &[u8],
    piece: usize,
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(from), 0).into())
        .unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    for chunk in bytes.chunks(piece) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .ok();
    out
}

/// Behind a TCP load balancer (here 127.0.0.2) that sends the PROXY
/// protocol, links bound to the client's address work; other peers' bytes
/// are plain HTTP, whatever they claim.
#[tokio::test]
async fn proxy_protocol_from_listed_balancers() {
    let s = TestServer::start_with(
        |b| b,
        ServerConfig::default().with_proxy_protocol(vec!["127.0.0.2/32".parse().unwrap()]),
    )
    .await;
    let bound = s
        .link("/pub/a.txt")
        .client_ip("203.0.113.9".parse().unwrap())
        .sign()
        .unwrap()
        .url("/media");
    let get = format!("GET {bound} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let with = |header: &[u8]| [header, get.as_bytes()].concat();
    let lb = [127, 0, 0, 2];
    // Version 1, in one piece and trickled.
    let v1 = with(b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n");
    for piece in [v1.len(), 7] {
        let r = common::parse(&send_from(lb, s.addr, &v1, piece).await);
        assert_eq!(r.status, 200, "pieces of {piece}");
    }
    // Version 2.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[203, 0, 113, 9, 127, 0, 0, 1, 0x12, 0x67, 0, 80]);
    let r = common::parse(&send_from(lb, s.addr, &with(&v2), 1000).await);
    assert_eq!(r.status, 200);
    // Another client, named by the balancer: refused.
    let other = with(b"PROXY TCP4 198.51.100.1 127.0.0.1 4711 80\r\n");
    let r = common::parse(&send_from(lb, s.addr, &other, 1000).await);
    assert_eq!((r.status, r.text().as_str()), (403, "ip\n"));
    // From the balancer without a header: closed unanswered.
    assert!(send_from(lb, s.addr, get.as_bytes(), 1000).await.is_empty());
    // From any other peer, a header is not read: it is a bad request line.
    let r = common::parse(&send_from([127, 0, 0, 1], s.addr, &v1, 1000).await);
    assert_eq!(r.status, 400);
    // HTTP/2 (prior knowledge) after the header.
    {
        use http_body_util::Empty;
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
        let mut stream = socket.connect(s.addr).await.unwrap();
        stream
            .write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n")
            .await
            .unwrap();
        let mut sender = common::http2_sender(stream).await;
        let uri = format!("http://{}{bound}", s.addr);
        let request = http::Request::get(uri).body(Empty::<bytes::Bytes>::new());
        let res = sender.send_request(request.unwrap()).await.unwrap();
        assert_eq!(
            (res.status().as_u16(), res.version()),
            (200, http::Version::HTTP_2)
        );
    }
    // Plain requests from other peers are served as ever.
    let plain = s.target("/pub/a.txt");
    assert_eq!(s.get(&plain, &[]).await.status, 200);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn slow_clients_are_cut_off_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config =
        ServerConfig::default().with_header_read_timeout(std::time::Duration::from_millis(500));
    let s = TestServer::start_with(|b| b, config).await;
    let started = std::time::Instant::now();
    // Silent client.
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // Slowloris: a partial head, never finished.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /media/pub/a.txt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r1 = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        silent.read_to_end(&mut buf),
    )
    .await;
    let r2 = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(r1.is_ok() && r2.is_ok(), "connections must be closed");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    // The server is still responsive.
    assert_eq!(s.get(&s.target("/pub/a.txt"), &[]).await.status, 200);
    s.shutdown().await.unwrap();
}

/// The header timeout bounds the first request head from the moment the
/// connection is accepted, even when its first byte comes just before the
/// deadline and the rest trickles in after it.
#[tokio::test]
async fn a_first_head_begun_late_is_cut_off_at_the_header_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_millis(1000);
    let config = ServerConfig::default().with_header_read_timeout(timeout);
    let s = TestServer::start_with(|b| b, config).await;
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let head = b"GET /media/pub/a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n";
    let mut closed_at = None;
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        // A closed connection reads as end of stream (or a reset).
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_at = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => panic!("answered a head that came after the deadline"),
        }
    }
    let closed_at = closed_at.expect("the server closes the connection");
    // At the deadline (plus timer and scheduling slack), not a whole
    // timeout after the first byte (1.8 s).
    assert!(closed_at < Duration::from_millis(1500), "{closed_at:?}");
    assert_eq!(s.get(&s.target("/pub/a.txt"), &[]).await.status, 200);
    s.shutdown().await.unwrap();
}

/// An HTTP/2 connection that opens no stream is closed at the header
/// timeout, as an HTTP/1 one that sends no head is.
#[tokio::test]
async fn an_http2_connection_without_a_request_is_cut_off_at_the_header_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ServerConfig::default().with_header_read_timeout(Duration::from_millis(500));
    let s = TestServer::start_with(|b| b, config).await;
    let mut idle = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let started = Instant::now();
    // The client preface and an empty SETTINGS frame, then nothing.
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection must be closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let s = TestServer::start().await;
    let long_header = "x".repeat(20_000);
    let r = s
        .get(&s.target("/pub/a.txt"), &[("X-Long", &long_header)])
        .await;
    assert_eq!(r.status, 431);
    let long_target = format!("/media/{}", "a".repeat(70_000));
    let r = s.get(&long_target, &[]).await;
    assert!(r.status == 414 || r.status == 431, "{}", r.status);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn host_header_rules() {
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any
    // request with two, or with one that is not uri-host[:port].
    let s = TestServer::start().await;
    let t = s.target("/pub/a.txt");
    let request = |version: &str, hosts: &[&str]| {
        let mut r = format!("GET {t} {version}\r\n");
        for h in hosts {
            r.push_str(&format!("Host:{h}\r\n"));
        }
        r + "Connection: close\r\n\r\n"
    };
    let cases: &[(&str, &[&str], u16)] = &[
        ("HTTP/1.1", &[" media.example.com"], 200),
        ("HTTP/1.1", &[" media.example.com:8443"], 200),
        ("HTTP/1.1", &[" [::1]:8080"], 200),
        ("HTTP/1.1", &[""], 200),
        ("HTTP/1.0", &[], 200),
        ("HTTP/1.1", &[], 400),
        ("HTTP/1.1", &[" a", " a"], 400),
        ("HTTP/1.0", &[" a", " b"], 400),
        ("HTTP/1.1", &[" user@media.example.com"], 400),
        ("HTTP/1.1", &[" media.example.com:80:80"], 400),
        ("HTTP/1.1", &[" media.example.com/x"], 400),
        ("HTTP/1.1", &[" [::1"], 400),
    ];
    for (version, hosts, status) in cases {
        let r = common::raw(s.addr, request(version, hosts).as_bytes()).await;
        assert_eq!(r.status, *status, "{version} {hosts:?}");
        if *status == 400 {
            assert_eq!(r.text(), "bad_host\n", "{version} {hosts:?}");
        } else {
            assert_eq!(r.text(), "hello world\n");
        }
    }
    // The health endpoint (on by default) follows the same rule.
    let r = common::raw(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = common::raw(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn odd_request_targets_never_5xx() {
    let s = TestServer::start().await;
    for req in [
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
            .to_string(),
        format!(
            "GET http://test{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
            s.target("/pub/a.txt")
        ),
        "GET /media/pub/a.txt HTTP/1.0\r\n\r\n".to_string(),
        "GARBAGE\r\n\r\n".to_string(),
        "GET /media/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
    ] {
        let r = raw(s.addr, req.as_bytes()).await;
        assert!(r.status < 500, "{req:?} -> {}", r.status);
        assert!(r.header("location").is_none());
    }
    // Absolute-form targets are served like origin-form.
    let r = raw(
        s.addr,
        format!(
            "GET http://test{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
            s.target("/pub/a.txt")
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn http2_with_prior_knowledge() {
    use http_body_util::{BodyExt, Empty};
    let s = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut sender = common::http2_sender(stream).await;
    let uri = format!("http://{}{}", s.addr, s.target("/pub/a.txt"));
    let res = sender
        .send_request(
            http::Request::get(uri)
                .body(Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello world\n");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn protocol_detection_waits_for_split_first_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(30));
    // The HTTP/2 preface in two segments: still HTTP/2 (the server's first
    // frame is its SETTINGS).
    let mut h2 = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    h2.set_nodelay(true).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    pause().await;
    h2.write_all(b"\r\nSM\r\n\r\n").await.unwrap();
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
    let mut frame = [0u8; 9];
    tokio::time::timeout(std::time::Duration::from_secs(5), h2.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame: {frame:?}");
    drop(h2);
    // An HTTP/1.1 request whose first byte arrives alone, then the rest in
    // pieces: one request, answered in full.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        s.target("/pub/a.txt")
    );
    let mut h1 = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    h1.set_nodelay(true).unwrap();
    let (first, rest) = request.as_bytes().split_at(1);
    h1.write_all(first).await.unwrap();
    pause().await;
    for piece in rest.chunks(40) {
        h1.write_all(piece).await.unwrap();
        pause().await;
    }
    let response = common::read_to_eof(&mut h1, std::time::Duration::from_secs(5)).await;
    let r = common::parse(&response);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|b| b.chunk_size(4096), ServerConfig::default()).await;
    let target = s.target("/big.bin");
    let addr = s.addr;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut first = [0u8; 1024];
    let n = sock.read(&mut first).await.unwrap();
    let stopping = tokio::spawn(s.shutdown());
    let rest = common::read_to_eof(&mut sock, std::time::Duration::from_secs(10)).await;
    let mut all = first[..n].to_vec();
    all.extend(rest);
    let r = common::parse(&all);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3_000_000, "the download in flight completes");
    stopping.await.unwrap().unwrap();
    // After shutdown, nothing listens.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A client that had connected and was still sending its request head
/// when the shutdown began gets its answer: the request is in flight as
/// far as the client can tell. (hyper's graceful shutdown would take a
/// connection whose first request it had not parsed yet for idle and
/// close it unanswered.)
#[tokio::test]
async fn graceful_shutdown_answers_a_request_still_arriving() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let target = s.target("/pub/a.txt");
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(format!("GET {target} HTTP/1.1\r\nHost: t\r\n").as_bytes())
        .await
        .unwrap();
    let stopping = tokio::spawn(s.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    sock.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let response = common::read_to_eof(&mut sock, std::time::Duration::from_secs(5)).await;
    assert!(!response.is_empty(), "closed unanswered");
    let r = common::parse(&response);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    stopping.await.unwrap().unwrap();
}
