//! Upload rules, in process: `PUT` requests handed to the tower service
//! with `oneshot`, their bodies in memory or streamed from a channel. (The
//! same over real sockets, with races, a killed server and a full disk, is
//! in the root package's `tests/uploads.rs`.)

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody};
use mediagate_verifier::signer::time::Duration;
use mediagate_verifier::signer::{Key, Keyring, LinkBuilder, Methods, Signer};
use mediagate_verifier::{Builder, Cors, MediaBody, MediaGate, Uploads};
use sha2::Digest as _;
use tower::ServiceExt as _;

const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";

struct InProcess {
    dir: tempfile::TempDir,
    root: PathBuf,
    gate: MediaGate,
    signer: Signer,
}

impl InProcess {
    fn new() -> Self {
        InProcess::with(Uploads::default(), |b| b)
    }

    fn with(uploads: Uploads, configure: impl FnOnce(Builder) -> Builder) -> Self {
        let (dir, root) = common::media_tree();
        std::fs::create_dir_all(root.join("up")).unwrap();
        let keyring = Keyring::new(Key::new("k1", &[9u8; 32]).unwrap());
        let mut uploads = uploads;
        uploads.min_free_bytes = 0;
        let gate = configure(MediaGate::builder(&root, keyring.clone()).uploads(uploads))
            .build()
            .unwrap();
        InProcess {
            dir,
            root,
            gate,
            signer: Signer::new(keyring),
        }
    }

    fn upload<'a>(&'a self, path: &'a str) -> LinkBuilder<'a> {
        self.signer.upload("u1", path).ttl(Duration::minutes(10))
    }

    async fn put(
        &self,
        link: LinkBuilder<'_>,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (Response<()>, String) {
        let mut req = Request::put(link.url("/").unwrap());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .header("content-length", body.len())
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        self.send(req).await
    }

    async fn send<B>(&self, req: Request<B>) -> (Response<()>, String)
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::fmt::Display + Send,
    {
        let Ok(res) = self.gate.clone().oneshot(req).await;
        let (parts, body): (_, MediaBody) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (
            Response::from_parts(parts, ()),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn get(&self, path: &str) -> (Response<()>, Vec<u8>) {
        let url = self
            .signer
            .link("u1", path)
            .ttl(Duration::minutes(10))
            .url("/")
            .unwrap();
        let Ok(res) = self
            .gate
            .clone()
            .oneshot(Request::get(url).body(Full::new(Bytes::new())).unwrap())
            .await;
        let (parts, body): (_, MediaBody) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, ()), bytes)
    }

    fn file(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(path.trim_start_matches('/'))).ok()
    }

    /// Every name in the upload directory (no temporary may be left).
    fn names(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

/// The default limits, changed by `change`.
fn limits(change: impl FnOnce(&mut Uploads)) -> Uploads {
    let mut u = Uploads::default();
    change(&mut u);
    u
}

fn reason(res: &Response<()>) -> &str {
    res.headers()
        .get("mediagate-reason")
        .map_or("-", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn an_upload_creates_the_file_with_its_mode_and_etag_and_downloads_see_it() {
    let t = InProcess::new();
    let (res, _) = t.put(t.upload("/up/a.bin"), b"hello", &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(t.file("/up/a.bin").as_deref(), Some(&b"hello"[..]));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(t.root.join("up/a.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let (res, body) = t.get("/up/a.bin").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body, b"hello");
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert_eq!(t.names("up"), ["a.bin"]);
}

#[tokio::test]
async fn create_only_refuses_an_existing_file_and_replace_replaces_it() {
    let t = InProcess::new();
    assert_eq!(
        t.put(t.upload("/up/a.bin"), b"one", &[]).await.0.status(),
        StatusCode::CREATED
    );
    // The cache has the first version.
    assert_eq!(t.get("/up/a.bin").await.1, b"one");
    let (res, _) = t.put(t.upload("/up/a.bin"), b"two", &[]).await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::CONFLICT, "exists")
    );
    let (res, _) = t
        .put(t.upload("/up/a.bin"), b"two", &[("if-none-match", "*")])
        .await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::PRECONDITION_FAILED, "exists")
    );
    // `If-None-Match: *` keeps a replace link from replacing.
    let (res, _) = t
        .put(
            t.upload("/up/a.bin").replace(true),
            b"two",
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let (res, _) = t
        .put(t.upload("/up/a.bin").replace(true), b"two", &[])
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Right away, the cache serves the new version.
    let (res, body) = t.get("/up/a.bin").await;
    assert_eq!(body, b"two");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(t.names("up"), ["a.bin"]);
}

#[tokio::test]
async fn limits_are_checked_before_the_body_when_declared() {
    let t = InProcess::with(limits(|u| u.max_size = 100), |b| b);
    let (res, body) = t
        .put(t.upload("/up/a.bin").max_size(4), b"hello", &[])
        .await;
    assert_eq!(
        (res.status(), body.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large\n")
    );
    // The server's own limit bounds every link.
    let (res, _) = t.put(t.upload("/up/a.bin"), &[7; 101], &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A body longer than it said (no declared length) is cut off.
    // A little over: the rest is read and dropped, and the exchange ends
    // cleanly (the connection can go on).
    let chunk = || Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(&[1; 16])));
    let body = StreamBody::new(futures_stream((0..10).map(|_| chunk()).collect()));
    let req = Request::put(t.upload("/up/b.bin").max_size(40).url("/").unwrap())
        .body(body)
        .unwrap();
    let (res, _) = t.send(req).await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert!(!res.headers().contains_key("connection"));
    // Far over (more than is worth reading to drop): the connection closes.
    let big = || Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![1u8; 65536])));
    let body = StreamBody::new(futures_stream((0..40).map(|_| big()).collect()));
    let req = Request::put(t.upload("/up/b.bin").max_size(40).url("/").unwrap())
        .body(body)
        .unwrap();
    let (res, _) = t.send(req).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()["connection"], "close");
    assert_eq!(t.names("up"), Vec::<String>::new());
    // Exactly the limit is fine.
    let (res, _) = t
        .put(t.upload("/up/c.bin").max_size(5), b"hello", &[])
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_content_type_must_match_the_link_and_the_bytes() {
    let t = InProcess::new();
    let jpeg = || t.upload("/up/p.jpg").content_type("image/jpeg");
    let (res, _) = t.put(jpeg(), JPEG, &[]).await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type")
    );
    let (res, _) = t.put(jpeg(), JPEG, &[("content-type", "image/png")]).await;
    assert_eq!(reason(&res), "content_type");
    let two = [
        ("content-type", "image/jpeg"),
        ("content-type", "text/html"),
    ];
    let (res, _) = t.put(jpeg(), JPEG, &two).await;
    assert_eq!(reason(&res), "content_type");
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let (res, _) = t.put(jpeg(), html, &[("content-type", "image/jpeg")]).await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_mismatch")
    );
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
    let (res, _) = t.put(jpeg(), png, &[("content-type", "image/jpeg")]).await;
    assert_eq!(reason(&res), "content_mismatch");
    assert_eq!(t.names("up"), Vec::<String>::new());
    let (res, _) = t.put(jpeg(), JPEG, &[("content-type", "IMAGE/JPEG")]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    // A large JPEG: checked on its first bytes, the rest streamed.
    let mut big = JPEG.to_vec();
    big.resize(100_000, 0x55);
    let link = t.upload("/up/big.jpg").content_type("image/jpeg");
    let (res, _) = t.put(link, &big, &[("content-type", "image/jpeg")]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(t.file("/up/big.jpg").unwrap(), big);
    // Without a signed type, whatever the request says is no matter.
    let (res, _) = t
        .put(
            t.upload("/up/any.bin"),
            b"x",
            &[("content-type", "what/ever")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn digests_signed_and_sent_are_checked_and_nothing_is_kept_on_a_mismatch() {
    let t = InProcess::new();
    let digest: [u8; 32] = sha2::Sha256::digest(b"hello").into();
    let (res, _) = t
        .put(t.upload("/up/d.bin").sha256(digest), b"hellO", &[])
        .await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::BAD_REQUEST, "digest_mismatch")
    );
    assert_eq!(t.names("up"), Vec::<String>::new());
    let (res, _) = t
        .put(t.upload("/up/d.bin").sha256(digest), b"hello", &[])
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);

    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sent = format!("sha-256=:{}:", b64.encode(digest));
    let (res, _) = t
        .put(
            t.upload("/up/e.bin"),
            b"hellO",
            &[("content-digest", &sent)],
        )
        .await;
    assert_eq!(reason(&res), "digest_mismatch");
    let sha512 = format!("sha-512=:{}:", b64.encode(sha2::Sha512::digest(b"hello")));
    let (res, _) = t
        .put(
            t.upload("/up/e.bin"),
            b"hello",
            &[("content-digest", &sha512)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let (res, _) = t
        .put(
            t.upload("/up/f.bin"),
            b"x",
            &[("content-digest", "sha-256=oops")],
        )
        .await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::BAD_REQUEST, "bad_digest")
    );
    assert_eq!(t.names("up"), ["d.bin", "e.bin"]);
}

#[tokio::test]
async fn the_link_decides_where_and_a_prefix_link_only_creates() {
    let t = InProcess::new();
    let prefix = || {
        t.signer
            .prefix("u1", "/up/u1/")
            .methods(Methods::PUT)
            .ttl(Duration::minutes(10))
    };
    std::fs::create_dir_all(t.root.join("up/u1")).unwrap();
    let put = |path: &str| Request::put(prefix().url_for_test(path));
    let (res, _) = t
        .send(
            put("/up/u1/a.txt")
                .body(Full::new(Bytes::from_static(b"a")))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let (res, _) = t
        .send(
            put("/up/u1/a.txt")
                .body(Full::new(Bytes::from_static(b"b")))
                .unwrap(),
        )
        .await;
    assert_eq!(reason(&res), "exists");
    // Outside the prefix, a download link, a missing directory.
    let outside = format!("/up/u2/a.txt?mg_token={}", prefix().token().unwrap());
    let (res, _) = t
        .send(Request::put(outside).body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(reason(&res), "scope");
    let read = t
        .signer
        .link("u1", "/up/r.txt")
        .ttl(Duration::minutes(10))
        .url("/")
        .unwrap();
    let (res, _) = t
        .send(Request::put(read).body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::FORBIDDEN, "method")
    );
    let (res, _) = t
        .send(
            put("/up/u1/new/a.txt")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::CONFLICT, "no_directory")
    );
    // A directory at the name.
    std::fs::create_dir_all(t.root.join("up/u1/dir")).unwrap();
    let (res, _) = t
        .send(put("/up/u1/dir").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(reason(&res), "not_a_file");
    // No token.
    let (res, _) = t
        .send(
            Request::put("/up/u1/z")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reason(&res), "missing_token");
}

trait UrlFor {
    fn url_for_test(self, path: &str) -> String;
}

impl UrlFor for LinkBuilder<'_> {
    fn url_for_test(self, path: &str) -> String {
        self.sign().unwrap().url_for("/", path).unwrap()
    }
}

#[tokio::test]
async fn directories_are_created_only_when_configured_and_never_through_a_symlink() {
    let t = InProcess::with(limits(|u| u.create_dirs = true), |b| b);
    let (res, _) = t.put(t.upload("/up/x/y/z.bin"), b"z", &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(t.file("/up/x/y/z.bin").as_deref(), Some(&b"z"[..]));
    // A symlinked directory on the way, inside the root and out of it.
    let outside = t.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, t.root.join("up/out")).unwrap();
    std::os::unix::fs::symlink(t.root.join("up/x"), t.root.join("up/in")).unwrap();
    for path in ["/up/out/a.bin", "/up/in/a.bin", "/up/out/new/a.bin"] {
        let (res, _) = t.put(t.upload(path), b"a", &[]).await;
        assert_eq!(
            (res.status(), reason(&res)),
            (StatusCode::CONFLICT, "no_directory"),
            "{path}"
        );
    }
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    // A symlink at the name itself is not written through.
    std::os::unix::fs::symlink(outside.join("f"), t.root.join("up/link")).unwrap();
    let (res, _) = t.put(t.upload("/up/link"), b"a", &[]).await;
    assert_eq!(reason(&res), "exists");
    assert!(!outside.join("f").exists());
}

#[tokio::test]
async fn expect_continue_is_fine_other_expectations_are_not() {
    let t = InProcess::new();
    let (res, _) = t
        .put(t.upload("/up/a"), b"a", &[("expect", "100-continue")])
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let (res, _) = t
        .put(t.upload("/up/b"), b"a", &[("expect", "something-else")])
        .await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::EXPECTATION_FAILED, "expectation_failed")
    );
}

#[tokio::test]
async fn a_body_that_stops_or_fails_leaves_nothing() {
    let t = InProcess::with(
        limits(|u| u.body_timeout = StdDuration::from_millis(200)),
        |b| b,
    );
    // Sends one chunk, then nothing.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"abc"))))
        .await
        .unwrap();
    let body = StreamBody::new(tokio_stream_of(rx));
    let req = Request::put(t.upload("/up/slow").url("/").unwrap())
        .body(body)
        .unwrap();
    let (res, _) = t.send(req).await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::REQUEST_TIMEOUT, "body_timeout")
    );
    drop(tx);
    // Fails half-way (a client gone).
    let chunks = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"abc"))),
        Err(std::io::Error::other("reset")),
    ];
    let req = Request::put(t.upload("/up/gone").url("/").unwrap())
        .body(StreamBody::new(futures_stream(chunks)))
        .unwrap();
    let (res, _) = t.send(req).await;
    assert_eq!(reason(&res), "incomplete_body");
    assert_eq!(t.names("up"), Vec::<String>::new());
}

#[tokio::test]
async fn uploads_off_is_405_and_the_cap_is_503() {
    let (dir, root) = common::media_tree();
    let keyring = Keyring::new(Key::new("k1", &[9u8; 32]).unwrap());
    let gate = MediaGate::builder(&root, keyring.clone()).build().unwrap();
    let signer = Signer::new(keyring);
    let url = signer
        .upload("u1", "/a")
        .ttl(Duration::minutes(1))
        .url("/")
        .unwrap();
    let Ok(res) = gate
        .oneshot(Request::put(url).body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    drop(dir);

    let t = InProcess::with(limits(|u| u.max_concurrent = 1), |b| b);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
    let first = Request::put(t.upload("/up/one").url("/").unwrap())
        .body(StreamBody::new(tokio_stream_of(rx)))
        .unwrap();
    let gate = t.gate.clone();
    let first = tokio::spawn(async move { gate.oneshot(first).await });
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    let (res, _) = t.put(t.upload("/up/two"), b"2", &[]).await;
    assert_eq!(
        (res.status(), reason(&res)),
        (StatusCode::SERVICE_UNAVAILABLE, "busy")
    );
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"1"))))
        .await
        .unwrap();
    drop(tx);
    let Ok(res) = first.await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let (res, _) = t.put(t.upload("/up/two"), b"2", &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_free_space_reserve_is_507() {
    let t = InProcess::new();
    let gate = MediaGate::builder(&t.root, t.signer.keyring().clone())
        .uploads(limits(|u| u.min_free_bytes = u64::MAX / 2))
        .build()
        .unwrap();
    let url = t.upload("/up/a").url("/").unwrap();
    let Ok(res) = gate
        .oneshot(
            Request::put(url)
                .body(Full::new(Bytes::from_static(b"a")))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(t.names("up"), Vec::<String>::new());
}

#[tokio::test]
async fn a_preflight_allows_put_from_a_listed_origin() {
    let t = InProcess::with(Uploads::default(), |b| {
        b.cors(Cors::Origins {
            origins: vec!["https://app.example".into()],
            credentials: false,
        })
    });
    let req = Request::options("/up/a.jpg")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (res, _) = t.send(req).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("PUT"), "{methods}");
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("content-type"), "{allowed}");
    // The upload itself names the origin, so the page can read the answer.
    let (res, _) = t
        .put(
            t.upload("/up/a.bin"),
            b"a",
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn temporary_names_are_never_served_nor_uploaded_to() {
    let t = InProcess::new();
    std::fs::write(t.root.join("up/.mg-upload.1.2.3"), b"partial").unwrap();
    let (res, _) = t.get("/up/.mg-upload.1.2.3").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (res, _) = t.put(t.upload("/up/.mg-upload.9"), b"a", &[]).await;
    assert_eq!(reason(&res), "bad_path");
    assert_eq!(t.gate.remove_stale_uploads(), 1);
    assert_eq!(t.names("up"), Vec::<String>::new());
}

/// A stream of `items`, for `StreamBody`.
fn futures_stream<T: Send + Unpin + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send {
    Iter(items.into_iter())
}

struct Iter<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for Iter<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// The items a channel receives, as a stream.
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send {
    Channel(rx)
}

struct Channel<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for Channel<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
