//! The service's header and response rules, in process: requests handed to
//! the tower service with `oneshot`, no sockets. (The same rules over TCP,
//! with the server's own, are in `responses.rs` and `links.rs`.)

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use mediagate_verifier::signer::time::{Duration, OffsetDateTime};
use mediagate_verifier::signer::{Key, Keyring, Signer};
use mediagate_verifier::{Builder, Cors, MediaBody, MediaGate};
use tower::ServiceExt as _;

/// A gate over the test media tree, mounted at `/media`, with one origin
/// allowed to read, and a signer for it.
struct InProcess {
    _dir: tempfile::TempDir,
    gate: MediaGate,
    signer: Signer,
}

impl InProcess {
    fn new() -> Self {
        InProcess::with(|b| {
            b.mount("/media").cors(Cors::Origins {
                origins: vec!["https://app.example".into()],
                credentials: false,
            })
        })
    }

    /// A gate over the test media tree configured by `configure`.
    fn with(configure: impl FnOnce(Builder) -> Builder) -> Self {
        let (dir, root) = common::media_tree();
        let keyring = Keyring::new(Key::new("k1", &[9u8; 32]).unwrap());
        let gate = configure(MediaGate::builder(&root, keyring.clone()))
            .build()
            .unwrap();
        InProcess {
            _dir: dir,
            gate,
            signer: Signer::new(keyring),
        }
    }

    /// A link for user u1 to `path`, valid ten minutes.
    fn link<'a>(&'a self, path: &'a str) -> mediagate_verifier::signer::SignedLink<'a> {
        self.signer
            .link("u1", path)
            .ttl(Duration::minutes(10))
            .sign()
            .unwrap()
    }

    /// `/media` + `path` with a token for it, valid ten minutes.
    fn target(&self, path: &str) -> String {
        self.signer
            .link("u1", path)
            .ttl(Duration::minutes(10))
            .url("/media")
            .unwrap()
    }

    async fn send(
        &self,
        req: Request<http_body_util::Empty<bytes::Bytes>>,
    ) -> (Response<()>, Vec<u8>) {
        let Ok(res) = self.gate.clone().oneshot(req).await;
        let (parts, body): (_, MediaBody) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, ()), bytes)
    }

    async fn get(&self, target: &str, headers: &[(&str, &str)]) -> (Response<()>, Vec<u8>) {
        let mut req = Request::get(target);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(
            req.body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
    }
}

fn header<'a>(res: &'a Response<()>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn one_range_is_a_206_past_the_end_a_416_several_the_whole_file() {
    let t = InProcess::new();
    let target = t.target("/videos/show/seg-0.ts");
    let (res, body) = t.get(&target, &[("range", "bytes=10-19")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&res, "content-range"), Some("bytes 10-19/1000"));
    assert_eq!(
        (header(&res, "content-length"), body.len()),
        (Some("10"), 10)
    );
    // A suffix longer than the file is the whole file, as a 206.
    let (res, body) = t.get(&target, &[("range", "bytes=-5000")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&res, "content-range"), Some("bytes 0-999/1000"));
    assert_eq!(body.len(), 1000);
    let (res, body) = t.get(&target, &[("range", "bytes=1000-")]).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&res, "content-range"), Some("bytes */1000"));
    assert!(body.is_empty());
    for ignored in ["bytes=0-1,5-6", "bytes=5-3", "items=0-1", "bytes=abc"] {
        let (res, body) = t.get(&target, &[("range", ignored)]).await;
        assert_eq!(res.status(), StatusCode::OK, "{ignored}");
        assert_eq!(body.len(), 1000, "{ignored}");
    }
}

#[tokio::test]
async fn preconditions_answer_304_and_412_in_rfc_order() {
    let t = InProcess::new();
    let target = t.target("/pub/a.txt");
    let (res, _) = t.get(&target, &[]).await;
    let etag = header(&res, "etag").unwrap().to_owned();
    let last_modified = header(&res, "last-modified").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let (res, body) = t.get(&target, &[("if-none-match", &weak)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&res, "etag"), Some(etag.as_str()));
    assert!(body.is_empty());
    // If-Match compares strongly: a weak tag fails it, and it is asked first.
    let (res, _) = t
        .get(&target, &[("if-match", &weak), ("if-none-match", &etag)])
        .await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    // If-None-Match present: If-Modified-Since is not looked at.
    let (res, _) = t
        .get(
            &target,
            &[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &last_modified),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = t
        .get(&target, &[("if-modified-since", &last_modified)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn if_range_holds_only_for_our_strong_tag_or_exact_date() {
    let t = InProcess::new();
    let target = t.target("/videos/show/seg-0.ts");
    let (res, _) = t.get(&target, &[]).await;
    let etag = header(&res, "etag").unwrap().to_owned();
    let lm = header(&res, "last-modified").unwrap().to_owned();
    let later = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).unwrap() + std::time::Duration::from_secs(86_400),
    );
    for (if_range, partial) in [
        (etag.as_str(), true),
        (lm.as_str(), true),
        (&format!("W/{etag}"), false),
        ("\"other\"", false),
        (later.as_str(), false),
    ] {
        let (res, _) = t
            .get(&target, &[("range", "bytes=0-9"), ("if-range", if_range)])
            .await;
        let want = if partial { 206 } else { 200 };
        assert_eq!(res.status().as_u16(), want, "If-Range {if_range}");
    }
}

#[tokio::test]
async fn head_is_get_without_the_body() {
    let t = InProcess::new();
    let target = t.target("/pub/a.txt");
    let (get, _) = t.get(&target, &[]).await;
    let (head, body) = t
        .send(
            Request::head(&target)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(body.is_empty());
    for h in ["content-length", "content-type", "etag", "last-modified"] {
        assert_eq!(header(&get, h), header(&head, h), "{h}");
    }
}

#[tokio::test]
async fn refusals_name_their_reason_and_are_never_cached() {
    let t = InProcess::new();
    let past = OffsetDateTime::now_utc() - Duration::hours(1);
    let expired = t
        .signer
        .link("u1", "/pub/a.txt")
        .issued_at(past)
        .ttl(Duration::minutes(5))
        .url("/media")
        .unwrap();
    for (req, status, reason) in [
        (Request::get(&expired), 403, "expired"),
        (Request::get("/media/pub/a.txt"), 403, "missing_token"),
        (Request::get("/elsewhere/a.txt"), 404, "not_found"),
        (
            Request::delete(t.target("/pub/a.txt")),
            405,
            "method_not_allowed",
        ),
    ] {
        let (res, body) = t
            .send(
                req.body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status().as_u16(), status, "{reason}");
        assert_eq!(header(&res, "mediagate-reason"), Some(reason));
        assert_eq!(header(&res, "cache-control"), Some("no-store"));
        assert_eq!(header(&res, "x-content-type-options"), Some("nosniff"));
        assert_eq!(body, format!("{reason}\n").into_bytes());
    }
    let (res, _) = t
        .send(
            Request::delete(t.target("/pub/a.txt"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await;
    assert_eq!(header(&res, "allow"), Some("GET, HEAD"));
    // HEAD: the reason in the header, no body.
    let (res, body) = t
        .send(
            Request::head(&expired)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await;
    assert_eq!(header(&res, "mediagate-reason"), Some("expired"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn listed_origins_read_refusals_and_preflights_need_no_token() {
    let t = InProcess::new();
    let app = ("origin", "https://app.example");
    let (res, _) = t.get("/media/pub/a.txt", &[app]).await;
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let preflight = Request::options("/media/pub/a.txt")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let (res, body) = t.send(preflight).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    let (res, _) = t
        .get("/media/pub/a.txt", &[("origin", "https://evil.example")])
        .await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_health_check_needs_no_token() {
    let t = InProcess::new();
    let (res, body) = t.get("/healthz", &[]).await;
    assert_eq!(
        (res.status(), body.as_slice()),
        (StatusCode::OK, &b"ok\n"[..])
    );
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_revoked_link_is_refused_before_any_file_is_opened() {
    use mediagate_verifier::RevocationsHandle;
    use mediagate_verifier::signer::revoke::{LinkId, Revocations};
    let handle = RevocationsHandle::default();
    let t = InProcess::with(|b| b.revocations(std::sync::Arc::new(handle.clone())));
    let gate = &t.gate;
    let link = t.link("/pub/a.txt");
    let get = |target: String| {
        let gate = gate.clone();
        async move {
            let Ok(res) = gate
                .oneshot(
                    Request::get(target)
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .unwrap(),
                )
                .await;
            (res.status().as_u16(), header_of(&res, "mediagate-reason"))
        }
    };
    assert_eq!(get(link.url("")).await, (200, None));
    let mut set = Revocations::new();
    let until = OffsetDateTime::now_utc() + Duration::hours(1);
    set.revoke_link(LinkId::of_token(link.token()).unwrap(), until)
        .unwrap();
    handle.replace(set);
    assert_eq!(get(link.url("")).await, (403, Some("revoked".into())));
    // Revoked links to files that do not exist are refused the same way:
    // nothing about the root is learnt from a revoked link.
    let mut set = Revocations::new();
    set.revoke_user(
        "u1",
        OffsetDateTime::now_utc() + Duration::seconds(1),
        until,
    )
    .unwrap();
    handle.replace(set);
    let missing = t.link("/no/such/file");
    assert_eq!(get(missing.url("")).await, (403, Some("revoked".into())));
    handle.replace(Revocations::new());
    assert_eq!(get(link.url("")).await, (200, None));
}

fn header_of(res: &Response<MediaBody>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_auth_endpoint_answers_a_proxy_for_the_request_it_describes() {
    use mediagate_verifier::PeerAddr;
    let loopback: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
    let t = InProcess::with(|b| b.mount("/media").auth_endpoint("/auth", vec![loopback]));
    let gate = &t.gate;
    let link = t.link("/pub/a.txt");
    let ask = |from: [u8; 4], headers: Vec<(&'static str, String)>| {
        let gate = gate.clone();
        async move {
            let mut req = Request::get("/auth");
            for (name, value) in headers {
                req = req.header(name, value);
            }
            let mut req = req
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            req.extensions_mut().insert(PeerAddr((from, 40000).into()));
            let Ok(res) = gate.oneshot(req).await;
            (
                res.status().as_u16(),
                header_of(&res, "mediagate-user"),
                header_of(&res, "mediagate-reason"),
            )
        }
    };
    let lo = [127, 0, 0, 1];
    let uri = |u: &str| ("x-original-uri", u.to_owned());
    // Granted: 204 and the user, nginx's headers or Caddy's.
    assert_eq!(
        ask(lo, vec![uri(&link.url("/media"))]).await,
        (204, Some("u1".into()), None)
    );
    let forwarded = vec![
        ("x-forwarded-uri", link.url("/media")),
        ("x-forwarded-method", "HEAD".into()),
    ];
    assert_eq!(ask(lo, forwarded).await.0, 204);
    // The cookie transport: the token in the proxied request's cookie.
    let cookie = vec![
        uri("/media/pub/a.txt"),
        ("cookie", format!("mg_token={}", link.token())),
    ];
    assert_eq!(ask(lo, cookie).await.0, 204);
    // Refusals are 403 whatever their own status, with their reason.
    let forged = format!(
        "{}AAAA",
        &link.url("/media")[..link.url("/media").len() - 4]
    );
    let other = link.url("/media").replace("/pub/a.txt", "/docs/report.pdf");
    for (headers, reason) in [
        (vec![uri(&forged)], "bad_signature"),
        (vec![uri(&other)], "scope"),
        (vec![uri("/media/pub/a.txt")], "missing_token"),
        (vec![uri("/elsewhere/a.txt")], "not_found"),
        (vec![], "malformed_request"),
        (
            vec![
                uri(&link.url("/media")),
                ("x-original-method", "POST".into()),
            ],
            "method_not_allowed",
        ),
    ] {
        assert_eq!(
            ask(lo, headers).await,
            (403, None, Some(reason.into())),
            "{reason}"
        );
    }
    // From anywhere but the listed proxies, there is no such endpoint.
    assert_eq!(
        ask([10, 0, 0, 1], vec![uri(&link.url("/media"))]).await,
        (404, None, Some("not_found".into()))
    );
}

/// Envoy's `ext_authz` (HTTP service) sends the original method, and the
/// original path and query below its `path_prefix`.
#[tokio::test]
async fn the_auth_endpoint_reads_envoys_path_prefix_form() {
    use mediagate_verifier::PeerAddr;
    let loopback: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
    let t = InProcess::with(|b| b.mount("/media").auth_endpoint("/auth", vec![loopback]));
    let link = t.link("/pub/a.txt");
    let ask = |method: &str, target: String, from: [u8; 4], cookie: Option<String>| {
        let gate = t.gate.clone();
        let mut req = Request::builder().method(method).uri(target);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let mut req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        req.extensions_mut().insert(PeerAddr((from, 40000).into()));
        async move {
            let Ok(res) = gate.oneshot(req).await;
            (
                res.status().as_u16(),
                header_of(&res, "mediagate-user"),
                header_of(&res, "mediagate-reason"),
            )
        }
    };
    let lo = [127, 0, 0, 1];
    let described = format!("/auth{}", link.url("/media"));
    let granted = (204, Some("u1".into()), None);
    assert_eq!(ask("GET", described.clone(), lo, None).await, granted);
    assert_eq!(ask("HEAD", described.clone(), lo, None).await, granted);
    let cookie = Some(format!("mg_token={}", link.token()));
    assert_eq!(
        ask("GET", "/auth/media/pub/a.txt".into(), lo, cookie).await,
        granted
    );
    let forged = format!("{}AAAA", &described[..described.len() - 4]);
    let other = described.replace("/pub/a.txt", "/docs/report.pdf");
    for (method, target, reason) in [
        ("GET", forged, "bad_signature"),
        ("GET", other, "scope"),
        ("GET", "/auth/media/pub/a.txt".to_owned(), "missing_token"),
        ("DELETE", described.clone(), "method_not_allowed"),
    ] {
        assert_eq!(
            ask(method, target, lo, None).await,
            (403, None, Some(reason.into())),
            "{reason}"
        );
    }
    // "/authx/..." is not below "/auth"; and from anyone but the proxies
    // the path is an ordinary one (outside the mount here).
    let beside = format!("/authx{}", link.url("/media"));
    assert_eq!(ask("GET", beside, lo, None).await.0, 404);
    assert_eq!(ask("GET", described, [10, 0, 0, 1], None).await.0, 404);
}

#[tokio::test]
async fn accel_redirect_mode_names_the_file_for_nginx_and_sends_no_body() {
    let t = InProcess::with(|b| b.mount("/media").accel_redirect("/_protected/"));
    let link = t
        .signer
        .link("u1", "/docs/a b?.pdf")
        .ttl(Duration::minutes(10))
        .attachment("report.pdf")
        .url("/media")
        .unwrap();
    let (res, body) = t.get(&link, &[("range", "bytes=0-1")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        header(&res, "x-accel-redirect"),
        Some("/_protected/docs/a%20b%3F.pdf")
    );
    assert_eq!(header(&res, "content-type"), Some("application/pdf"));
    assert!(
        header(&res, "content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"report.pdf\"")
    );
    assert!(
        header(&res, "cache-control")
            .unwrap()
            .starts_with("private")
    );
    // The file need not exist: nginx answers for the disk.
    assert!(header(&res, "accept-ranges").is_none());
    // Refusals are the direct mode's.
    let (res, body) = t.get("/media/docs/a.pdf", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body, b"missing_token\n");
    assert!(header(&res, "x-accel-redirect").is_none());
}

#[test]
fn an_accel_redirect_prefix_must_be_a_plain_absolute_path() {
    let (_dir, root) = common::media_tree();
    let keyring = Keyring::new(Key::new("k1", &[9u8; 32]).unwrap());
    for bad in ["_protected", "/a b", "/a?x", "/a#b", "/a%2e", "/a\n"] {
        let built = MediaGate::builder(&root, keyring.clone())
            .accel_redirect(bad)
            .build();
        assert!(built.is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_granted_auth_check_names_the_link_and_its_expiry() {
    use mediagate_verifier::PeerAddr;
    let loopback: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
    let t = InProcess::with(|b| b.mount("/media").auth_endpoint("/auth", vec![loopback]));
    let link = t.link("/pub/a.txt");
    let mut req = Request::get("/auth")
        .header("x-original-uri", link.url("/media"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr(([127, 0, 0, 1], 40000).into()));
    let Ok(res) = t.gate.clone().oneshot(req).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let id = mediagate_verifier::signer::revoke::LinkId::of_token(link.token()).unwrap();
    assert_eq!(header_of(&res, "mediagate-link-id"), Some(id.to_string()));
    assert_eq!(
        header_of(&res, "mediagate-expires"),
        Some(link.expires_at().unix_timestamp().to_string())
    );
}
