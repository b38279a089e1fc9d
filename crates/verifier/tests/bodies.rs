//! File bodies over the wire: whole, pipelined, with and without sendfile, over HTTP/2, and cut short when the file shrinks.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::TestServer;
use mediagate_verifier::ServerConfig;

#[tokio::test]
async fn large_files_stream_completely() {
    let s = TestServer::start().await;
    let r = s.get(&s.target("/big.bin"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3_000_000);
    assert!(
        r.body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8)
    );
    let r = s
        .get(&s.target("/big.bin"), &[("Range", "bytes=1000000-1999999")])
        .await;
    assert_eq!(r.body.len(), 1_000_000);
    assert!(
        r.body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((i + 1_000_000) % 251) as u8)
    );
    s.shutdown().await.unwrap();
}

/// Sends pipelined `requests` on one connection (the last one closing it)
/// and splits the answers; `heads` says which answer a HEAD request.
async fn pipelined(s: &TestServer, requests: &str, heads: &[bool]) -> Vec<common::Response> {
    let mut out = Vec::new();
    let closed = common::send_raw(
        s.addr,
        requests.as_bytes(),
        &mut out,
        std::time::Duration::from_secs(20),
    )
    .await;
    assert!(closed, "all responses within 20 s");
    split_responses(&out, heads)
}

/// Splits pipelined responses by their Content-Length; `heads` says which
/// answer a HEAD request (no body).
fn split_responses(mut buf: &[u8], heads: &[bool]) -> Vec<common::Response> {
    let mut out = Vec::new();
    for &head in heads {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut r = common::parse(&buf[..end]);
        let len: usize = if head {
            0
        } else {
            r.header("content-length").unwrap().parse().unwrap()
        };
        r.body = buf[end..end + len].to_vec();
        out.push(r);
        buf = &buf[end + len..];
    }
    assert!(
        buf.is_empty(),
        "{} bytes after the last response",
        buf.len()
    );
    out
}

#[tokio::test]
async fn file_bodies_are_the_same_with_and_without_sendfile() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    for sendfile in [true, false] {
        let config = ServerConfig::default().with_sendfile(sendfile);
        let s = TestServer::start_with(|b| b, config).await;
        let t = s.target("/big.bin");
        // Pipelined on one connection: whole file, a range across the
        // 1 MiB span boundaries, a HEAD, a small file, the file again.
        let requests = format!(
            "GET {t} HTTP/1.1\r\nHost: x\r\n\r\n\
             GET {t} HTTP/1.1\r\nHost: x\r\nRange: bytes=1048000-2097999\r\n\r\n\
             HEAD {t} HTTP/1.1\r\nHost: x\r\n\r\n\
             GET {a} HTTP/1.1\r\nHost: x\r\n\r\n\
             GET {t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            a = s.target("/pub/a.txt"),
        );
        let r = pipelined(&s, &requests, &[false, false, true, false, false]).await;
        let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 206, 200, 200, 200], "sendfile {sendfile}");
        assert!(r[0].body == big, "sendfile {sendfile}");
        assert!(
            r[1].body == big[1_048_000..2_098_000],
            "sendfile {sendfile}"
        );
        assert_eq!(r[2].header("content-length"), Some("3000000"));
        assert_eq!(r[3].body, b"hello world\n");
        assert!(r[4].body == big, "sendfile {sendfile}");
        s.shutdown().await.unwrap();
    }
}

/// What a single-range request for `len` bytes must get: status and the
/// byte range of the file in the body (RFC 9110 §14).
fn expected(range: &Option<(Option<u64>, Option<u64>)>, len: u64) -> (u16, std::ops::Range<u64>) {
    match *range {
        None => (200, 0..len),
        Some((Some(first), last)) if first < len => {
            let last = last.map_or(len - 1, |l| l.min(len - 1));
            (206, first..last + 1)
        }
        Some((None, Some(n))) if n > 0 && len > 0 => (206, len.saturating_sub(n)..len),
        Some(_) => (416, 0..0),
    }
}

#[tokio::test]
async fn random_pipelined_mixes_get_exactly_the_right_bytes() {
    let files: [(&str, Vec<u8>); 3] = [
        (
            "/big.bin",
            (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
        ),
        ("/pub/a.txt", b"hello world\n".to_vec()),
        ("/videos/show/seg-0.ts", vec![0x47; 1000]),
    ];
    // A fixed-seed xorshift: the same mixes every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for sendfile in [true, false] {
        let config = ServerConfig::default().with_sendfile(sendfile);
        let s = TestServer::start_with(|b| b, config).await;
        for _ in 0..40 {
            let mut requests = String::new();
            let mut plan = Vec::new();
            let n = 1 + next(6);
            for i in 0..n {
                let (path, data) = &files[next(3) as usize];
                let len = data.len() as u64;
                let head = next(4) == 0;
                let range = match next(5) {
                    0 | 1 => None,
                    2 => Some((Some(next(len + 2)), Some(next(len + 2) + len / 2))),
                    3 => Some((Some(next(len + 2)), None)),
                    _ => Some((None, Some(next(len + 2)))),
                }
                .filter(|r| !matches!(r, (Some(a), Some(b)) if b < a));
                let header = match range {
                    None => String::new(),
                    Some((a, b)) => format!(
                        "Range: bytes={}-{}\r\n",
                        a.map(|v| v.to_string()).unwrap_or_default(),
                        b.map(|v| v.to_string()).unwrap_or_default()
                    ),
                };
                let close = if i + 1 == n {
                    "Connection: close\r\n"
                } else {
                    ""
                };
                let method = if head { "HEAD" } else { "GET" };
                requests.push_str(&format!(
                    "{method} {} HTTP/1.1\r\nHost: x\r\n{header}{close}\r\n",
                    s.target(path)
                ));
                plan.push((head, expected(&range, len), data));
            }
            let heads: Vec<bool> = plan.iter().map(|p| p.0).collect();
            let responses = pipelined(&s, &requests, &heads).await;
            for (r, (head, (status, bytes), data)) in responses.iter().zip(&plan) {
                assert_eq!(r.status, *status, "sendfile {sendfile}\n{requests}");
                if *status == 416 {
                    continue;
                }
                let want = &data[bytes.start as usize..bytes.end as usize];
                assert_eq!(
                    r.header("content-length"),
                    Some(want.len().to_string().as_str())
                );
                if !head {
                    assert!(
                        r.body == want,
                        "sendfile {sendfile}: body differs\n{requests}"
                    );
                }
            }
        }
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_file_truncated_while_streaming_aborts_the_connection() {
    for sendfile in [true, false] {
        truncated_while_streaming(ServerConfig::default().with_sendfile(sendfile)).await;
    }
}

async fn truncated_while_streaming(config: ServerConfig) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|b| b.chunk_size(64 * 1024), config).await;
    // Larger than every socket buffer on the way, so that the server is
    // still reading when the file shrinks (sparse: no disk used).
    const LEN: u64 = 256 << 20;
    std::fs::File::create(s.root.join("huge.bin"))
        .unwrap()
        .set_len(LEN)
        .unwrap();
    let target = s.target("/huge.bin");
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    // Read the head and some body, then cut the file short.
    let mut buf = vec![0u8; 4096];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(n > 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.root.join("huge.bin"))
        .unwrap()
        .set_len(100_000)
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut rest),
    )
    .await;
    let total = n + rest.len();
    // Never padded or finished as if complete: far fewer bytes than promised.
    assert!((total as u64) < LEN, "got {total} bytes");
    s.shutdown().await.unwrap();
}

/// HTTP/2 streams read files in 16 KiB chunks: whole files and ranges that
/// start and end inside chunks arrive byte-exact, many streams at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_carry_files_and_ranges_byte_exact() {
    use http_body_util::{BodyExt, Empty};
    let s = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let sender = common::http2_sender(stream).await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let uri = format!("http://{}{}", s.addr, s.target("/big.bin"));
    // (Range header, expected first byte, expected length)
    let asks: Vec<(Option<String>, usize, usize)> = vec![
        (None, 0, big.len()),
        (Some("bytes=1-16384".into()), 1, 16_384),
        (Some("bytes=16383-49153".into()), 16_383, 32_771),
        (Some("bytes=-100000".into()), big.len() - 100_000, 100_000),
        (Some("bytes=2999999-".into()), 2_999_999, 1),
    ];
    let mut tasks = Vec::new();
    for round in 0..4 {
        for (range, start, len) in asks.clone() {
            let mut sender = sender.clone();
            let uri = uri.clone();
            let big = big.clone();
            tasks.push(tokio::spawn(async move {
                let mut req = http::Request::get(uri);
                if let Some(r) = &range {
                    req = req.header("range", r);
                }
                let res = sender
                    .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
                    .await
                    .unwrap();
                let want = if range.is_some() { 206 } else { 200 };
                assert_eq!(res.status(), want, "{range:?} (round {round})");
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body.len(), len, "{range:?}");
                assert!(
                    body[..] == big[start..start + len],
                    "{range:?}: bytes differ"
                );
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.shutdown().await.unwrap();
}
