//! Cross-origin reads over the wire: who may read which answers, and preflights.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::TestServer;
use mediagate_verifier::signer::time::{Duration, OffsetDateTime};
use mediagate_verifier::{Cors, ServerConfig};

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
