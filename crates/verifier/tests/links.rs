//! Links over the wire: refusals, token transports and scopes, IP-bound links (directly and behind proxies), cache policy, and keyring replacement.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::TestServer;
use mediagate_verifier::signer::time::{Duration, OffsetDateTime};
use mediagate_verifier::{CachePolicy, ClientIpSource, ServerConfig, Transports};

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
