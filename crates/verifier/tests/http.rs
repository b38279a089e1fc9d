//! The verifier's HTTP behaviour, against the real server over real TCP.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{CANARY, TestServer, raw};
use mediagate_verifier::signer::time::{Duration, OffsetDateTime};
use mediagate_verifier::{
    CacheLimits, CachePolicy, ClientIpSource, Cors, ServerConfig, Transports,
};

#[tokio::test]
async fn serves_a_file_with_its_headers() {
    let s = TestServer::start().await;
    let r = s.get(&s.target("/pub/a.txt"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let etag = r.header("etag").unwrap();
    assert!(etag.starts_with("\"c-") && etag.ends_with('"'), "{etag}");
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    // max-age is bounded by the link's 10 remaining minutes.
    let cc = r.header("cache-control").unwrap();
    let age: i64 = cc
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&age), "{cc}");
    // Unicode paths round-trip through the URL encoding.
    let r = s.get(&s.target("/café/naïve file.txt"), &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "unicode"));
    let r = s.get(&s.target("/videos/show/master.m3u8"), &[]).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let s = TestServer::start().await;
    let target = s.target("/pub/a.txt");
    let get = s.get(&target, &[]).await;
    let head = s.request("HEAD", &target, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for h in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "cache-control",
    ] {
        assert_eq!(get.header(h), head.header(h), "{h}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let s = TestServer::start().await;
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"] {
        let r = s
            .request(m, &s.target("/pub/a.txt"), &[("Content-Length", "0")])
            .await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_are_short_uniform_and_uncached() {
    let s = TestServer::start().await;
    let token = s.token("/pub/a.txt");
    let expired = s
        .link("/pub/a.txt")
        .issued_at(OffsetDateTime::now_utc() - Duration::hours(2))
        .ttl(Duration::minutes(5))
        .sign()
        .unwrap()
        .into_token();
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(String, u16, &str)> = vec![
        ("/media/pub/a.txt".into(), 403, "missing_token"),
        (
            format!("/media/pub/a.txt?mg_token={expired}"),
            403,
            "expired",
        ),
        (
            format!("/media/pub/a.txt?mg_token={tampered}"),
            403,
            "bad_signature",
        ),
        (
            "/media/pub/a.txt?mg_token=garbage".into(),
            403,
            "malformed_token",
        ),
        (
            format!("/media/pub/other.txt?mg_token={token}"),
            403,
            "scope",
        ),
        (
            format!("/media/pub/a.txt?mg_token={token}&mg_token={token}"),
            400,
            "ambiguous_token",
        ),
        (
            format!("/media/pub/a.txt?mg%5Ftoken={token}"),
            400,
            "ambiguous_token",
        ),
        (
            format!("/media/_mg/{token}/pub/a.txt?mg_token={token}"),
            400,
            "ambiguous_token",
        ),
        (
            format!("/media/pub/../pub/a.txt?mg_token={token}"),
            400,
            "bad_path",
        ),
        (
            format!("/media/pub/%2e%2e/pub/a.txt?mg_token={token}"),
            400,
            "bad_path",
        ),
        (
            format!("/media/pub%2fa.txt?mg_token={token}"),
            400,
            "bad_path",
        ),
        (
            format!("/elsewhere/a.txt?mg_token={token}"),
            404,
            "not_found",
        ),
    ];
    for (target, status, code) in cases {
        let r = s.get(&target, &[]).await;
        assert_eq!(r.status, status, "{target}");
        assert_eq!(r.text(), format!("{code}\n"), "{target}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(!r.text().contains("a.txt") && !r.text().contains(&token));
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn missing_files_directories_fifos_and_symlinks_out_are_404() {
    let s = TestServer::start().await;
    let root_link = s.token("/");
    for path in [
        "/pub/missing.txt",
        "/dir",
        "/dir/",
        "/pub/fifo",
        "/pub/link-out",
        "/pub/rel-out",
        "/dir-out/secret.txt",
    ] {
        let r = s
            .get(&format!("/media{path}?mg_token={root_link}"), &[])
            .await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains(CANARY));
    }
    // An invalid link on a missing file is 403, like on an existing one:
    // nothing about the file system leaks before the link is checked.
    let r = s.get("/media/pub/missing.txt?mg_token=x", &[]).await;
    assert_eq!(r.status, 403);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn ranges() {
    let s = TestServer::start().await;
    let t = s.target("/pub/a.txt"); // "hello world\n", 12 bytes
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        ("bytes=0-4", 206, "hello", Some("bytes 0-4/12")),
        ("bytes=6-", 206, "world\n", Some("bytes 6-11/12")),
        ("bytes=-6", 206, "world\n", Some("bytes 6-11/12")),
        ("bytes=-100", 206, "hello world\n", Some("bytes 0-11/12")),
        ("bytes=6-1000", 206, "world\n", Some("bytes 6-11/12")),
        ("bytes=12-", 416, "", Some("bytes */12")),
        ("bytes=-0", 416, "", Some("bytes */12")),
        ("bytes=0-1,3-4", 200, "hello world\n", None),
        // Empty list elements are not a second range (RFC 9110 §5.6.1.2).
        ("bytes=0-1,", 206, "he", Some("bytes 0-1/12")),
        ("bytes=, 6-", 206, "world\n", Some("bytes 6-11/12")),
        ("bytes=0-,0-,0-,0-,0-,0-", 200, "hello world\n", None),
        ("bytes=5-2", 200, "hello world\n", None),
        ("lines=1-2", 200, "hello world\n", None),
        // Positions beyond u64 are valid syntax: past the end of any file.
        (
            "bytes=99999999999999999999999-",
            416,
            "",
            Some("bytes */12"),
        ),
        (
            "bytes=2-99999999999999999999999",
            206,
            "llo world\n",
            Some("bytes 2-11/12"),
        ),
    ];
    for (range, status, body, content_range) in cases {
        let r = s.get(&t, &[("Range", range)]).await;
        assert_eq!(r.status, *status, "{range}");
        assert_eq!(r.text(), *body, "{range}");
        assert_eq!(r.header("content-range"), *content_range, "{range}");
        assert_eq!(r.header("content-length").unwrap(), body.len().to_string());
    }
    let empty = s.target("/empty.bin");
    assert_eq!(s.get(&empty, &[("Range", "bytes=0-")]).await.status, 416);
    assert_eq!(s.get(&empty, &[]).await.status, 200);
    // If-Range: the range applies only while the strong ETag matches.
    let (etag, _) = validators(&s, &t).await;
    let r = s
        .get(&t, &[("Range", "bytes=0-4"), ("If-Range", &etag)])
        .await;
    assert_eq!(r.status, 206);
    let r = s
        .get(&t, &[("Range", "bytes=0-4"), ("If-Range", "\"stale\"")])
        .await;
    assert_eq!((r.status, r.body.len()), (200, 12));
    let weak = format!("W/{etag}");
    let r = s
        .get(&t, &[("Range", "bytes=0-4"), ("If-Range", &weak)])
        .await;
    assert_eq!(r.status, 200);
    s.shutdown().await.unwrap();
}

/// The ETag and Last-Modified a plain GET of `target` answers with.
async fn validators(s: &TestServer, target: &str) -> (String, String) {
    let r = s.get(target, &[]).await;
    let header = |name| r.header(name).unwrap().to_owned();
    (header("etag"), header("last-modified"))
}

#[tokio::test]
async fn conditional_requests() {
    let s = TestServer::start().await;
    let t = s.target("/pub/a.txt");
    let (etag, lm) = validators(&s, &t).await;
    let r = s.get(&t, &[("If-None-Match", &etag)]).await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(r.header("cache-control").unwrap().starts_with("private"));
    assert_eq!(
        s.get(&t, &[("If-None-Match", "\"other\"")]).await.status,
        200
    );
    assert_eq!(s.get(&t, &[("If-Modified-Since", &lm)]).await.status, 304);
    assert_eq!(
        s.get(
            &t,
            &[("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        s.get(&t, &[("If-Modified-Since", "garbage")]).await.status,
        200
    );
    assert_eq!(s.get(&t, &[("If-Match", &etag)]).await.status, 200);
    assert_eq!(s.get(&t, &[("If-Match", "\"other\"")]).await.status, 412);
    assert_eq!(
        s.get(
            &t,
            &[("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")]
        )
        .await
        .status,
        412
    );
    assert_eq!(s.get(&t, &[("If-Unmodified-Since", &lm)]).await.status, 200);
    assert_eq!(
        s.request("HEAD", &t, &[("If-None-Match", &etag)])
            .await
            .status,
        304
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn header_fields_sent_on_several_lines() {
    // RFC 9110 §5.3: the lines of a list field (If-Match, If-None-Match)
    // form one list; a singleton (Range, If-Range, the dates) sent twice
    // is not a valid value.
    let s = TestServer::start().await;
    let t = s.target("/pub/a.txt");
    let (etag, lm) = validators(&s, &t).await;
    let old = "Sat, 01 Jan 2000 00:00:00 GMT";
    // (request headers, status, body length)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, usize);
    let cases: Vec<Case> = vec![
        // The matching tag on the second line counts.
        (
            vec![("If-None-Match", "\"x\""), ("If-None-Match", &etag)],
            304,
            0,
        ),
        (vec![("If-Match", "\"x\""), ("If-Match", &etag)], 200, 12),
        (vec![("If-Match", "\"x\""), ("If-Match", "\"y\"")], 412, 0),
        // Two ranges on two lines: not one valid range, the whole file.
        (
            vec![("Range", "bytes=0-1"), ("Range", "bytes=2-3")],
            200,
            12,
        ),
        (vec![("Range", "bytes=0-1")], 206, 2),
        // If-Range twice does not hold: the whole file.
        (
            vec![
                ("Range", "bytes=0-1"),
                ("If-Range", &etag),
                ("If-Range", &etag),
            ],
            200,
            12,
        ),
        (vec![("Range", "bytes=0-1"), ("If-Range", &etag)], 206, 2),
        // A date sent twice is ignored, like an invalid one.
        (
            vec![("If-Modified-Since", &lm), ("If-Modified-Since", &lm)],
            200,
            12,
        ),
        (
            vec![("If-Unmodified-Since", old), ("If-Unmodified-Since", old)],
            200,
            12,
        ),
    ];
    for (headers, status, len) in cases {
        let r = s.get(&t, &headers).await;
        assert_eq!((r.status, r.body.len()), (status, len), "{headers:?}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn path_form_cookie_and_prefix_scope() {
    let s = TestServer::start().await;
    let show = s.token("/videos/show/");
    let r = s
        .get(&format!("/media/_mg/{show}/videos/show/master.m3u8"), &[])
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "#EXTM3U\nseg-0.ts\n"));
    // The playlist's relative segment URL resolves under the same token.
    let r = s
        .get(&format!("/media/_mg/{show}/videos/show/seg-0.ts"), &[])
        .await;
    assert_eq!((r.status, r.body.len()), (200, 1000));
    // Whole-segment prefix: a sibling directory and the parent are refused.
    let r = s
        .get(&format!("/media/_mg/{show}/videos-private/x.ts"), &[])
        .await;
    assert_eq!((r.status, r.text().as_str()), (403, "scope\n"));
    let r = s
        .get(&format!("/media/videos/show-x/a?mg_token={show}"), &[])
        .await;
    assert_eq!(r.status, 403);
    let cookie = format!("theme=dark; mg_token={show}");
    let r = s
        .get("/media/videos/show/seg-0.ts", &[("Cookie", &cookie)])
        .await;
    assert_eq!(r.status, 200);
    s.shutdown().await.unwrap();
}

/// A browser holding token cookies sends each whose path matches, the most
/// specific first, and still follows query and path-form links: none of
/// that is ambiguous.
#[tokio::test]
async fn cookies_for_nested_scopes_and_links_beside_a_cookie() {
    let s = TestServer::start().await;
    let folder = s.token("/videos/");
    let show = s.token("/videos/show/");
    let other = s.token("/pub/");
    let seg = "/media/videos/show/seg-0.ts";
    // Both cookies match: the first grants.
    let both = format!("mg_token={show}; theme=dark; mg_token={folder}");
    assert_eq!(s.get(seg, &[("Cookie", &both)]).await.status, 200);
    // The first does not cover the file, the second does.
    let mixed = format!("mg_token={other}; mg_token={folder}");
    assert_eq!(s.get(seg, &[("Cookie", &mixed)]).await.status, 200);
    // On separate lines, as HTTP/2 may send them.
    let r = s
        .get(
            seg,
            &[
                ("Cookie", &format!("mg_token={other}")),
                ("Cookie", &format!("mg_token={show}")),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    // None grants: the first one's refusal.
    let expired = s
        .link("/videos/show/")
        .issued_at(OffsetDateTime::now_utc() - Duration::hours(1))
        .ttl(Duration::minutes(1))
        .token()
        .unwrap();
    let none = format!("mg_token={expired}; mg_token={other}");
    let r = s.get(seg, &[("Cookie", &none)]).await;
    assert_eq!((r.status, r.text().as_str()), (403, "expired\n"));
    // More than four is refused before any is checked.
    let five = vec![format!("mg_token={show}"); 5].join("; ");
    let r = s.get(seg, &[("Cookie", &five)]).await;
    assert_eq!((r.status, r.text().as_str()), (400, "ambiguous_token\n"));
    // A link in the URL is used as it is, whatever the cookies say.
    let a_txt = s.target("/pub/a.txt");
    let r = s.get(&a_txt, &[("Cookie", &none)]).await;
    assert_eq!(r.status, 200);
    let r = s
        .get(
            &format!("/media/_mg/{show}/videos/show/seg-0.ts"),
            &[("Cookie", &format!("mg_token={expired}"))],
        )
        .await;
    assert_eq!(r.status, 200);
    // Two tokens in the URL stay ambiguous.
    let r = s
        .get(
            &format!("/media/_mg/{show}/videos/show/seg-0.ts?mg_token={show}"),
            &[],
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (400, "ambiguous_token\n"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn signed_overrides_reach_the_response() {
    let s = TestServer::start().await;
    let link = s
        .link("/docs/report.pdf")
        .attachment("Quartalsbericht März.pdf")
        .content_type("application/x-custom")
        .sign()
        .unwrap();
    let r = s.get(&link.url("/media"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some(
            "attachment; filename=\"Quartalsbericht M_rz.pdf\"; filename*=UTF-8''Quartalsbericht%20M%C3%A4rz.pdf"
        )
    );
    assert_eq!(r.header("content-type"), Some("application/x-custom"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn documents_that_can_run_script_are_sandboxed() {
    let s = TestServer::start().await;
    std::fs::write(s.root.join("pub/page.html"), "<script>alert(1)</script>").unwrap();
    std::fs::write(
        s.root.join("pub/icon.svg"),
        "<svg xmlns='http://www.w3.org/2000/svg'/>",
    )
    .unwrap();
    for (path, sandboxed) in [
        ("/pub/page.html", true),
        ("/pub/icon.svg", true),
        ("/pub/a.txt", false),
        ("/videos/show/master.m3u8", false),
    ] {
        let r = s.get(&s.target(path), &[]).await;
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy");
        assert_eq!(csp, sandboxed.then_some("sandbox"), "{path}");
    }
    // A signed type override counts, not the file's extension.
    let link = s
        .link("/pub/a.txt")
        .content_type("text/html")
        .sign()
        .unwrap();
    let r = s.get(&link.url("/media"), &[]).await;
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn ip_bound_links_check_the_peer() {
    let s = TestServer::start().await;
    let ok = s
        .link("/pub/a.txt")
        .client_ip("127.0.0.1".parse().unwrap())
        .sign()
        .unwrap();
    assert_eq!(s.get(&ok.url("/media"), &[]).await.status, 200);
    let other = s
        .link("/pub/a.txt")
        .client_ip("203.0.113.9".parse().unwrap())
        .sign()
        .unwrap();
    let r = s
        .get(&other.url("/media"), &[("X-Forwarded-For", "203.0.113.9")])
        .await;
    assert_eq!((r.status, r.text().as_str()), (403, "ip\n"));
    s.shutdown().await.unwrap();
}

/// Behind a CDN edge and a load balancer (both trusted, the load balancer
/// being the peer here), the client is the rightmost untrusted entry of
/// X-Forwarded-For; what the client wrote itself, to the left, is ignored.
#[tokio::test]
async fn ip_bound_links_behind_a_chain_of_trusted_proxies() {
    let s = TestServer::start_with(
        |b| {
            b.client_ip(ClientIpSource::TrustedHeader {
                header: http::HeaderName::from_static("x-forwarded-for"),
                trusted_proxies: vec![
                    "127.0.0.0/8".parse().unwrap(),
                    "192.0.2.0/24".parse().unwrap(),
                ],
            })
        },
        ServerConfig::default(),
    )
    .await;
    let bound = s
        .link("/pub/a.txt")
        .client_ip("203.0.113.9".parse().unwrap())
        .sign()
        .unwrap();
    let url = bound.url("/media");
    for (xff, status) in [
        ("203.0.113.9", 200),
        ("203.0.113.9, 192.0.2.7", 200),
        ("198.51.100.1, 203.0.113.9:4711, 192.0.2.7", 200),
        // The client's own claim, left of the edge's entry, is not read.
        ("203.0.113.9, 198.51.100.1, 192.0.2.7", 403),
        ("203.0.113.9, not-an-address, 192.0.2.7", 403),
    ] {
        let r = s.get(&url, &[("X-Forwarded-For", xff)]).await;
        assert_eq!(r.status, status, "{xff}");
    }
    s.shutdown().await.unwrap();
}

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
async fn cache_policy_and_transports_are_configurable() {
    let mut path_only = Transports::default();
    path_only.query = false;
    path_only.cookie = false;
    let s = TestServer::start_with(
        |b| b.cache_policy(CachePolicy::NoStore).transports(path_only),
        ServerConfig::default(),
    )
    .await;
    let token = s.token("/pub/a.txt");
    let r = s.get(&format!("/media/_mg/{token}/pub/a.txt"), &[]).await;
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("no-store"))
    );
    let r = s
        .get(&format!("/media/pub/a.txt?mg_token={token}"), &[])
        .await;
    assert_eq!((r.status, r.text().as_str()), (403, "missing_token\n"));
    s.shutdown().await.unwrap();
}

/// The CORS headers of a response, for comparing whole.
fn cors_headers(r: &common::Response) -> [Option<&str>; 4] {
    [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
        "vary",
    ]
    .map(|name| r.header(name))
}

const EXPOSED: Option<&str> = Some("accept-ranges, content-range, content-disposition, etag");

#[tokio::test]
async fn listed_origins_may_read_every_answer_and_preflight() {
    let app = "https://app.example";
    let s = TestServer::start_with(
        |b| {
            b.cors(Cors::Origins {
                origins: vec![app.into(), "http://localhost:3000".into()],
                credentials: true,
            })
        },
        ServerConfig::default(),
    )
    .await;
    let readable = [Some(app), Some("true"), EXPOSED, Some("origin")];
    let unreadable = [None, None, None, Some("origin")];
    let target = s.target("/pub/a.txt");
    let from = |origin| [("Origin", origin)];

    let r = s.get(&target, &from(app)).await;
    assert_eq!((r.status, cors_headers(&r)), (200, readable));
    let r = s
        .get(&target, &[("Origin", app), ("Range", "bytes=0-4")])
        .await;
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 0-4/12"))
    );
    assert_eq!(cors_headers(&r), readable);
    // A refusal is readable too, so that the player can tell an expired
    // link and fetch a new one.
    let expired = s
        .link("/pub/a.txt")
        .issued_at(OffsetDateTime::now_utc() - Duration::hours(2))
        .ttl(Duration::hours(1))
        .url("/media")
        .unwrap();
    let r = s.get(&expired, &from(app)).await;
    assert_eq!((r.status, r.text().as_str()), (403, "expired\n"));
    assert_eq!(cors_headers(&r), readable);
    // Other origins, and no origin, read nothing (the link still works for
    // a plain <video> load).
    for headers in [&from("https://evil.example")[..], &from("null"), &[]] {
        let r = s.get(&target, headers).await;
        assert_eq!(
            (r.status, cors_headers(&r)),
            (200, unreadable),
            "{headers:?}"
        );
    }

    // Preflights: below the mount, with or without a token.
    let ask = |origin| [("Origin", origin), ("Access-Control-Request-Method", "GET")];
    let prefix = s.token("/videos/show/");
    for path in [
        target.clone(),
        format!("/media/_mg/{prefix}/videos/show/seg-0.ts"),
        "/media/pub/a.txt".to_owned(),
    ] {
        let r = s.request("OPTIONS", &path, &ask(app)).await;
        assert_eq!((r.status, r.body.len()), (204, 0), "{path}");
        assert_eq!(r.header("access-control-allow-methods"), Some("GET, HEAD"));
        assert!(
            r.header("access-control-allow-headers")
                .is_some_and(|h| h.contains("range")),
        );
        assert_eq!(r.header("access-control-max-age"), Some("7200"));
        assert_eq!(cors_headers(&r), readable);
    }
    let r = s
        .request("OPTIONS", &target, &ask("https://evil.example"))
        .await;
    assert_eq!((r.status, r.text().as_str()), (403, "cors_origin\n"));
    assert_eq!(cors_headers(&r), unreadable);
    // Not a preflight, or not below the mount: OPTIONS is not served.
    let r = s.request("OPTIONS", &target, &from(app)).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = s.request("OPTIONS", "/elsewhere/a.txt", &ask(app)).await;
    assert_eq!(r.status, 405);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn cross_origin_reads_are_off_by_default_and_any_origin_is_a_star() {
    let s = TestServer::start().await;
    let target = s.target("/pub/a.txt");
    let r = s.get(&target, &[("Origin", "https://app.example")]).await;
    assert_eq!((r.status, cors_headers(&r)), (200, [None; 4]));
    let preflight = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "GET"),
    ];
    assert_eq!(s.request("OPTIONS", &target, &preflight).await.status, 405);
    s.shutdown().await.unwrap();

    let s = TestServer::start_with(|b| b.cors(Cors::AnyOrigin), ServerConfig::default()).await;
    let star = [Some("*"), None, EXPOSED, None];
    let target = s.target("/pub/a.txt");
    for headers in [&[("Origin", "https://anyone.example")][..], &[]] {
        let r = s.get(&target, headers).await;
        assert_eq!((r.status, cors_headers(&r)), (200, star));
    }
    let r = s.get("/media/pub/a.txt?mg_token=forged", &[]).await;
    assert_eq!((r.status, cors_headers(&r)), (403, star));
    let r = s.request("OPTIONS", &target, &preflight).await;
    assert_eq!((r.status, cors_headers(&r)), (204, star));
    s.shutdown().await.unwrap();
}

#[test]
fn a_cors_origin_that_is_not_an_origin_is_refused_at_build() {
    let (_dir, root) = common::media_tree();
    let keyring = mediagate_verifier::signer::Keyring::new(
        mediagate_verifier::signer::Key::new("k", &[1; 32]).unwrap(),
    );
    for bad in ["*", "null", "https://app.example/", "app.example"] {
        let built = mediagate_verifier::MediaGate::builder(&root, keyring.clone())
            .cors(Cors::Origins {
                origins: vec![bad.into()],
                credentials: false,
            })
            .build();
        let err = built.err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "CORS origin must be like https://app.example.com (got {bad:?})"
            ))
        );
    }
}

#[tokio::test]
async fn health_endpoint_is_unsigned() {
    let s = TestServer::start().await;
    let r = s.get("/healthz", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(
        s.request("POST", "/healthz", &[("Content-Length", "0")])
            .await
            .status,
        405
    );
    s.shutdown().await.unwrap();
}

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

/// A root given as a symlink is resolved when the gate is built and when
/// it is reopened, never per request: switching the link (a deployment's
/// `current` to its next release) takes effect at `reopen_root`, after
/// which nothing is served from the old directory, neither a cached small
/// file nor a kept descriptor of a large one.
#[tokio::test]
async fn reopening_the_root_follows_a_switched_symlink() {
    use mediagate_verifier::signer::{Key, Keyring, Signer};
    let dir = tempfile::tempdir().unwrap();
    let release = |name: &str, fill: u8| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("x.txt"), format!("release {name}\n")).unwrap();
        std::fs::write(d.join("big.bin"), vec![fill; 100_000]).unwrap();
        d
    };
    let (a, b) = (release("a", b'a'), release("b", b'b'));
    std::fs::write(a.join("only-in-a.txt"), "old\n").unwrap();
    let current = dir.path().join("current");
    std::os::unix::fs::symlink(&a, &current).unwrap();
    let keyring = Keyring::new(Key::new("k", &[3u8; 32]).unwrap());
    let gate = mediagate_verifier::MediaGate::builder(&current, keyring.clone())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(mediagate_verifier::serve(
        listener,
        gate.clone(),
        ServerConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let signer = Signer::new(keyring);
    let get = |path: &'static str| {
        let url = signer
            .link("u", path)
            .ttl(Duration::minutes(5))
            .url("")
            .unwrap();
        async move {
            let request = format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            raw(addr, request.as_bytes()).await
        }
    };
    assert_eq!(gate.root(), a.canonicalize().unwrap());
    assert_eq!(get("/x.txt").await.body, b"release a\n");
    assert_eq!(get("/big.bin").await.body, vec![b'a'; 100_000]);
    // Switched (atomically, as deployments do): still the old release
    // until the root is reopened.
    let next = dir.path().join("next");
    std::os::unix::fs::symlink(&b, &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    assert_eq!(get("/x.txt").await.body, b"release a\n");
    assert_eq!(gate.reopen_root().unwrap(), b.canonicalize().unwrap());
    assert_eq!(gate.root(), b.canonicalize().unwrap());
    // Past the revalidation window (1 ms by default).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(get("/x.txt").await.body, b"release b\n");
    assert_eq!(get("/big.bin").await.body, vec![b'b'; 100_000]);
    assert_eq!(get("/only-in-a.txt").await.status, 404);
    // A root that cannot be opened: an error, and the gate keeps serving.
    std::fs::remove_file(&current).unwrap();
    assert!(gate.reopen_root().is_err());
    assert_eq!(get("/x.txt").await.body, b"release b\n");
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}

/// Limits at the far end of their types (`Duration::MAX` to mean "never",
/// `usize::MAX` connections) are taken as "very long" and "very many":
/// before, the deadline arithmetic overflowed and every connection's task
/// panicked without an answer.
#[tokio::test]
async fn limits_at_the_end_of_their_types_still_serve() {
    use http_body_util::{BodyExt, Empty};
    use std::time::Duration as StdDuration;
    let config = ServerConfig::default()
        .with_header_read_timeout(StdDuration::MAX)
        .with_send_timeout(StdDuration::MAX)
        .with_drain_timeout(StdDuration::MAX)
        .with_max_connections(usize::MAX)
        .with_max_header_bytes(usize::MAX);
    let mut limits = CacheLimits::default();
    limits.close_unused_after = StdDuration::MAX;
    limits.revalidate_after = StdDuration::MAX;
    let s = TestServer::start_with(
        |b| {
            b.cache_limits(limits)
                .leeway(Duration::MAX)
                .max_ttl(Duration::MAX)
        },
        config,
    )
    .await;
    for path in ["/pub/a.txt", "/pub/a.txt", "/big.bin"] {
        let r = s.get(&s.target(path), &[]).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut sender = common::http2_sender(stream).await;
    let uri = format!("http://{}{}", s.addr, s.target("/big.bin"));
    let request = http::Request::get(uri).body(Empty::<bytes::Bytes>::new());
    let res = sender.send_request(request.unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 3_000_000);
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

/// Longer than the default revalidation window (1 ms), with room for a
/// slow machine's timer.
const PAST_THE_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

#[tokio::test]
async fn no_worker_serves_a_changed_file_after_its_window() {
    // Each worker caches files on its own; every one must revalidate.
    let s = TestServer::start_workers(2).await;
    let t = s.target("/pub/a.txt");
    let fetch_all = |want: &'static str| {
        let s = &s;
        let t = &t;
        async move {
            // Many connections: the kernel spreads them over both workers,
            // and each fetch after the first is a cache hit in its worker.
            for _ in 0..24 {
                let r = s.get(t, &[]).await;
                assert_eq!(r.status, 200);
                assert_eq!(r.text(), want);
            }
        }
    };
    fetch_all("hello world\n").await;
    std::fs::write(s.root.join("pub/new.txt"), "replaced\n").unwrap();
    std::fs::rename(s.root.join("pub/new.txt"), s.root.join("pub/a.txt")).unwrap();
    tokio::time::sleep(PAST_THE_WINDOW).await;
    fetch_all("replaced\n").await;
    std::fs::write(s.root.join("pub/a.txt"), "REPLACED\n").unwrap();
    tokio::time::sleep(PAST_THE_WINDOW).await;
    fetch_all("REPLACED\n").await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn revalidating_every_hit_never_serves_a_changed_file() {
    let mut strict = CacheLimits::default();
    strict.revalidate_after = std::time::Duration::ZERO;
    let s = TestServer::start_with(|b| b.cache_limits(strict), ServerConfig::default()).await;
    let t = s.target("/pub/a.txt");
    assert_eq!(s.get(&t, &[]).await.text(), "hello world\n");
    assert_eq!(s.get(&t, &[]).await.text(), "hello world\n");
    // Replaced by rename (how deploys and rsync publish files).
    std::fs::write(s.root.join("pub/new.txt"), "replaced\n").unwrap();
    std::fs::rename(s.root.join("pub/new.txt"), s.root.join("pub/a.txt")).unwrap();
    let r = s.get(&t, &[]).await;
    assert_eq!(r.text(), "replaced\n");
    assert_eq!(r.header("content-length"), Some("9"));
    // Rewritten in place, same length.
    std::fs::write(s.root.join("pub/a.txt"), "REPLACED\n").unwrap();
    assert_eq!(s.get(&t, &[]).await.text(), "REPLACED\n");
    // Removed.
    std::fs::remove_file(s.root.join("pub/a.txt")).unwrap();
    assert_eq!(s.get(&t, &[]).await.status, 404);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn within_its_window_a_cached_version_is_served_whole_and_consistent() {
    let mut lazy = CacheLimits::default();
    lazy.revalidate_after = std::time::Duration::from_secs(3600);
    let s = TestServer::start_with(|b| b.cache_limits(lazy), ServerConfig::default()).await;
    let t = s.target("/pub/a.txt");
    let before = validators(&s, &t).await;
    std::fs::write(s.root.join("pub/new.txt"), "a longer replacement\n").unwrap();
    std::fs::rename(s.root.join("pub/new.txt"), s.root.join("pub/a.txt")).unwrap();
    // The version confirmed last, never a mix of old validators and new
    // bytes.
    let r = s.get(&t, &[]).await;
    assert_eq!(r.text(), "hello world\n");
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(validators(&s, &t).await, before);
    s.shutdown().await.unwrap();
}

/// Whether this process holds a descriptor of `path` after its deletion.
fn holds_deleted(path: &std::path::Path) -> bool {
    let wanted = format!("{} (deleted)", path.display());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target.to_string_lossy() == wanted)
}

#[tokio::test]
async fn a_deleted_large_file_is_let_go_of_once_unused() {
    let unused = std::time::Duration::from_millis(600);
    let mut limits = CacheLimits::default();
    limits.close_unused_after = unused;
    let s = TestServer::start_with(|b| b.cache_limits(limits), ServerConfig::default()).await;
    let t = s.target("/big.bin");
    let big = s.root.join("big.bin");
    let started = std::time::Instant::now();
    assert_eq!(s.request("HEAD", &t, &[]).await.status, 200);
    assert_eq!(s.get(&t, &[]).await.status, 200, "served again");
    std::fs::remove_file(&big).unwrap();
    if started.elapsed() < unused {
        // Kept for the next request, and so still pinning the space.
        assert!(holds_deleted(&big));
    }
    // The server's sweep closes it without another request.
    let deadline = started + 4 * unused;
    while holds_deleted(&big) {
        assert!(
            std::time::Instant::now() < deadline,
            "a deleted file's descriptor is still held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(s.get(&t, &[]).await.status, 404);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_worker_checks_links_with_a_replaced_keyring() {
    use mediagate_verifier::signer::{Key, Keyring, Signer};
    let s = TestServer::start_workers(2).await;
    let old = s.target("/pub/a.txt");
    let rotated = Keyring::new(Key::new("next", &[7u8; 32]).unwrap());
    let new = Signer::new(rotated.clone())
        .link("tester", "/pub/a.txt")
        .ttl(Duration::minutes(10))
        .url("/media")
        .unwrap();
    // Many connections: the kernel spreads them over both workers.
    let statuses = |target: &str| {
        let s = &s;
        let target = target.to_owned();
        async move {
            let mut seen = Vec::new();
            for _ in 0..24 {
                let r = s.get(&target, &[]).await;
                seen.push((r.status, r.text()));
            }
            seen
        }
    };
    let served = |seen: Vec<(u16, String)>| seen.iter().all(|(st, _)| *st == 200);
    let refused = |seen: Vec<(u16, String)>| {
        seen.iter()
            .all(|(st, body)| *st == 403 && body == "unknown_key\n")
    };
    assert!(served(statuses(&old).await));
    assert!(refused(statuses(&new).await));
    s.keys.replace(rotated);
    assert!(served(statuses(&new).await));
    assert!(refused(statuses(&old).await));
    // A keyring holding both keys accepts both: rotation with overlap.
    let both = s
        .keyring
        .clone()
        .with_verify_key(Key::new("next", &[7u8; 32]).unwrap());
    s.keys.replace(both.unwrap());
    assert!(served(statuses(&old).await));
    assert!(served(statuses(&new).await));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_quoted_cookie_value_is_the_value_inside_its_quotes() {
    // RFC 6265 §4.1.1: cookie-value = *cookie-octet / DQUOTE *cookie-octet
    // DQUOTE. One pair of quotes is the quoting, not part of the token.
    let s = TestServer::start().await;
    let token = s.token("/pub/a.txt");
    for (cookie, status, reason) in [
        (format!("mg_token=\"{token}\""), 200, None),
        (format!("a=1; mg_token=\"{token}\"; b=2"), 200, None),
        (format!("mg_token=\"{token}"), 403, Some("malformed_token")),
        (format!("mg_token={token}\""), 403, Some("malformed_token")),
        (
            format!("mg_token=\"\"{token}\"\""),
            403,
            Some("malformed_token"),
        ),
        ("mg_token=\"\"".to_owned(), 403, Some("missing_token")),
    ] {
        let res = s.get("/media/pub/a.txt", &[("cookie", &cookie)]).await;
        assert_eq!(res.status, status, "{cookie}");
        assert_eq!(res.header("mediagate-reason"), reason, "{cookie}");
    }
    s.shutdown().await.unwrap();
}
