//! Responses over the wire: file headers, HEAD, methods, missing files, ranges, conditional requests, signed overrides, sandboxing, the health check and limits at the ends of their types.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{CANARY, TestServer, validators};
use mediagate_verifier::signer::time::Duration;
use mediagate_verifier::{CacheLimits, ServerConfig};

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
