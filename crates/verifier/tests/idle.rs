//! Idle keep-alive connections, parked between requests without hyper's
//! state: the next request, pipelined ones, the cap, the idle timeout and
//! shutdown.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use mediagate_verifier::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response with a Content-Length from `s`: its status and body.
async fn response(s: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = common::parse(&buf);
    let len: usize = head.header("content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (head.status, body)
}

/// The `mediagate_connections_parked` gauge now.
fn parked_now() -> i64 {
    mediagate_verifier::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix("mediagate_connections_parked "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Waits up to 5 s for `f` to hold.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Whether the server has closed `s` (it reads the end of the stream).
async fn closed(s: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A server with `config`, and a connection to it that has made one
/// request (answered 200); the request, to send again.
async fn after_one_request(config: ServerConfig) -> (TestServer, TcpStream, String) {
    let s = TestServer::start_with(|b| b, config).await;
    let get = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", s.target("/pub/a.txt"));
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(get.as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await.0, 200);
    (s, c, get)
}

/// Asserts that the server closes `c` a 300 ms timeout after `since`
/// (within slack for a loaded machine).
async fn closed_about_300ms_after(c: &mut TcpStream, since: Instant) {
    assert!(closed(c).await);
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_parked_connection_serves_what_comes_next_whole_and_in_order() {
    mediagate_verifier::metrics::install();
    let s = TestServer::start().await;
    let a = s.target("/pub/a.txt");
    let big = s.target("/big.bin");
    let big_file = std::fs::read(s.root.join("big.bin")).unwrap();
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let get = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n");

    c.write_all(get(&a).as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await, (200, b"hello world\n".to_vec()));
    // Quiet now: parked.
    assert!(eventually(|| parked_now() >= 1).await, "not parked");

    // The next request, a large file (sent with sendfile), then three
    // pipelined in one write, answered in order.
    c.write_all(get(&big).as_bytes()).await.unwrap();
    let (status, body) = response(&mut c).await;
    assert_eq!(status, 200);
    assert!(body == big_file, "the large file's bytes differ");
    let three = [get(&a), get("/media/pub/a.txt"), get(&a)].concat();
    c.write_all(three.as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await, (200, b"hello world\n".to_vec()));
    assert_eq!(response(&mut c).await.0, 403);
    assert_eq!(response(&mut c).await, (200, b"hello world\n".to_vec()));

    // A head sent in pieces, the first while parked.
    let head = get(&a);
    let (first, rest) = head.split_at(7);
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(rest.as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await, (200, b"hello world\n".to_vec()));

    // A head the guard refuses, after a park: answered, then closed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write_all(get(&format!("{a}#x")).as_bytes())
        .await
        .unwrap();
    assert_eq!(response(&mut c).await.0, 400);
    assert!(closed(&mut c).await);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn parked_connections_hold_their_place_under_the_cap_and_give_way_first() {
    let s = TestServer::start_with(|b| b, ServerConfig::default().with_max_connections(2)).await;
    let a = s.target("/pub/a.txt");
    let get = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n");
    // One idle (parked) connection, one busy with a file it does not read.
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(get(&a).as_bytes()).await.unwrap();
    assert_eq!(response(&mut idle).await.0, 200);
    let mut busy = TcpStream::connect(s.addr).await.unwrap();
    let big = s.target("/big.bin");
    busy.write_all(get(&big).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third client at the cap: the parked one gives way, not the busy
    // one, and the newcomer is served.
    let mut third = TcpStream::connect(s.addr).await.unwrap();
    third.write_all(get(&a).as_bytes()).await.unwrap();
    assert!(closed(&mut idle).await, "the parked connection gave way");
    assert_eq!(response(&mut third).await.0, 200);
    let (status, body) = response(&mut busy).await;
    assert_eq!((status, body.len()), (200, 3_000_000));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_parked_connection_closes_at_the_keep_alive_timeout_and_on_shutdown() {
    let config = ServerConfig::default().with_keep_alive_timeout(Duration::from_millis(300));
    let (_s, mut c, _) = after_one_request(config).await;
    closed_about_300ms_after(&mut c, Instant::now()).await;

    // Parked when the server shuts down: closed at once, not at the
    // drain deadline.
    let s = TestServer::start().await;
    let a = s.target("/pub/a.txt");
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("GET {a} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(response(&mut c).await.0, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = Instant::now();
    s.shutdown().await.unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(2));
    assert!(closed(&mut c).await);
}

/// The keep-alive timeout bounds the wait for a next request, the header
/// timeout the head once it has begun: a parked connection outlives the
/// header timeout, and a head begun after a long wait must still arrive
/// whole within the header timeout of its first bytes (a slow client
/// cannot trickle one over the keep-alive timeout).
#[tokio::test]
async fn the_wait_for_a_request_and_the_head_have_their_own_timeouts() {
    let config = ServerConfig::default()
        .with_header_read_timeout(Duration::from_millis(300))
        .with_keep_alive_timeout(Duration::from_secs(30));
    let (_s, mut c, get) = after_one_request(config).await;
    // Idle for three header timeouts: still served.
    tokio::time::sleep(Duration::from_millis(900)).await;
    c.write_all(get.as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await.0, 200);
    // A head begun after a long wait, then left unfinished: closed at the
    // header timeout of its first bytes.
    tokio::time::sleep(Duration::from_millis(900)).await;
    c.write_all(b"GET /pub/a.txt HTTP/1.1\r\nHo").await.unwrap();
    closed_about_300ms_after(&mut c, Instant::now()).await;
}

/// A request that asks to close (or an HTTP/1.0 one) is its connection's
/// last, even when its body was never read and the connection looks idle
/// at once: it is closed right after the response, never parked.
#[tokio::test]
async fn the_last_exchange_closes_and_is_never_parked() {
    let s = TestServer::start_with(
        |b| b.uploads(mediagate_verifier::Uploads::default()),
        ServerConfig::default(),
    )
    .await;
    let put = format!(
        "PUT /media/pub/%2e%2e/x?mg_token={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: 1\r\n\r\nx",
        s.token("/pub/x")
    );
    for head in [
        put.as_str(),
        "POST /pub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        "POST /pub/a.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        for _ in 0..30 {
            let mut c = TcpStream::connect(s.addr).await.unwrap();
            // The body (if any) in a write of its own, as clients send it.
            let (head, body) = head.split_at(head.find("\r\n\r\n").unwrap() + 4);
            c.write_all(head.as_bytes()).await.unwrap();
            // After the server has had time to answer the head alone.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let _ = c.write_all(body.as_bytes()).await;
            let started = Instant::now();
            let mut all = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut all)).await;
            assert!(read.is_ok(), "{head:?}: not closed within 5 s");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{head:?}: closed after {:?}",
                started.elapsed()
            );
            assert!(all.starts_with(b"HTTP/1."), "{head:?}");
        }
    }
}
