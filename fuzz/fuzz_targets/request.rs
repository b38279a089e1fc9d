//! Whole requests through the service, in process: target, Range,
//! conditional and CORS headers from the input, as GET, OPTIONS or PUT
//! (an upload, its body and headers from the input too), with and without
//! a valid link for the whole root. Never a 5xx, never a byte from outside
//! the root, never a CORS grant to an origin not listed, never a file
//! written outside the root.
#![no_main]

use std::sync::OnceLock;

use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use mediagate_signer::time::Duration;
use mediagate_signer::{Key, Keyring, Signer};
use mediagate_verifier::{Cors, MediaGate, Uploads};

const CANARY: &[u8] = b"CANARY-OUTSIDE-THE-ROOT";
/// The one origin whose scripts may read responses.
const APP: &str = "https://app.example";

fn gate() -> &'static (tempfile::TempDir, MediaGate, String) {
    static G: OnceLock<(tempfile::TempDir, MediaGate, String)> = OnceLock::new();
    G.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("pub")).expect("mkdir");
        std::fs::write(root.join("pub/a.txt"), b"hello world\n").expect("write");
        std::fs::write(root.join("empty"), b"").expect("write");
        // Above the cache's 16 KiB: served from a kept descriptor.
        std::fs::write(root.join("pub/big.bin"), vec![b'b'; 40 << 10]).expect("write");
        std::fs::write(dir.path().join("secret"), CANARY).expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("pub/out")).expect("symlink");
        let ring = Keyring::new(Key::new("fuzz", &[3u8; 32]).expect("key"));
        let mut uploads = Uploads::default();
        uploads.min_free_bytes = 0;
        uploads.create_dirs = true;
        uploads.fsync = false;
        let gate = MediaGate::builder(&root, ring.clone())
            .cors(Cors::Origins {
                origins: vec![APP.into()],
                credentials: true,
            })
            .uploads(uploads)
            .build()
            .expect("gate");
        let token = Signer::new(ring)
            .prefix("fuzz", "/")
            .ttl(Duration::days(7))
            .sign()
            .expect("sign")
            .into_token();
        (dir, gate, token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_dir, gate, token) = gate();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let first = parts.next().unwrap_or("/");
    // A leading '!' makes the request an OPTIONS (a preflight, when the
    // CORS headers below are there); a leading '^' a PUT, whose body is
    // the last line.
    let (method, target) = match (first.strip_prefix('!'), first.strip_prefix('^')) {
        (Some(rest), _) => (http::Method::OPTIONS, rest),
        (_, Some(rest)) => (http::Method::PUT, rest),
        _ => (http::Method::GET, first),
    };
    let names = [
        "range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since",
        "cookie", "origin", "access-control-request-method", "content-type", "content-digest",
        "expect", "content-length",
    ];
    let body = text.rsplit('\n').next().unwrap_or_default().as_bytes().to_vec();
    for signed in [false, true] {
        let uri = if signed {
            let sep = if target.contains('?') { '&' } else { '?' };
            format!("{target}{sep}mg_token={token}")
        } else {
            target.to_owned()
        };
        let mut req = http::Request::builder().method(method.clone()).uri(uri.as_str());
        for (name, value) in names.iter().zip(parts.clone()) {
            req = req.header(*name, value);
        }
        let body = http_body_util::Full::new(bytes::Bytes::from(body.clone()));
        let Ok(req) = req.body(body) else { continue };
        let origin_is_app = req.headers().get("origin").map(|o| o == APP);
        let call = tower_service::Service::call(&mut gate.clone(), req);
        let Ok(res) = futures_executor::block_on(call);
        assert!(res.status().as_u16() < 500, "{uri:?} -> {}", res.status());
        assert!(res.headers().get("location").is_none());
        let h = res.headers();
        if let Some(allowed) = h.get("access-control-allow-origin") {
            assert_eq!(allowed, APP);
            assert_eq!(origin_is_app, Some(true));
        } else {
            assert!(h.get("access-control-allow-credentials").is_none());
        }
        let body = futures_executor::block_on(res.into_body().collect());
        if let Ok(body) = body {
            let body = body.to_bytes();
            assert!(!body.windows(CANARY.len()).any(|w| w == CANARY));
        }
    }
    // Nothing was written beside the root, nor through its symlink out.
    assert_eq!(std::fs::read(_dir.path().join("secret")).ok().as_deref(), Some(CANARY));
    assert_eq!(std::fs::read_dir(_dir.path()).map(|d| d.count()).unwrap_or(0), 2);
});
