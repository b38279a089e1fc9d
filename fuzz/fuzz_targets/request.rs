//! Whole requests through the service, in process: target, Range and
//! conditional headers from the input, with and without a valid link for
//! the whole root. Never a 5xx, never a byte from outside the root.
#![no_main]

use std::sync::OnceLock;

use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use mediagate_signer::time::Duration;
use mediagate_signer::{Key, Keyring, Signer};
use mediagate_verifier::MediaGate;

const CANARY: &[u8] = b"CANARY-OUTSIDE-THE-ROOT";

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
        let gate = MediaGate::builder(&root, ring.clone()).build().expect("gate");
        let token = Signer::new(ring)
            .link("/")
            .user("fuzz")
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
    let target = parts.next().unwrap_or("/");
    let names = ["range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "cookie"];
    for signed in [false, true] {
        let uri = if signed {
            let sep = if target.contains('?') { '&' } else { '?' };
            format!("{target}{sep}mg_token={token}")
        } else {
            target.to_owned()
        };
        let mut req = http::Request::get(uri.as_str());
        for (name, value) in names.iter().zip(parts.clone()) {
            req = req.header(*name, value);
        }
        let Ok(req) = req.body(()) else { continue };
        let res = gate.handle(&req);
        assert!(res.status().as_u16() < 500, "{uri:?} -> {}", res.status());
        assert!(res.headers().get("location").is_none());
        let body = futures_executor::block_on(res.into_body().collect());
        if let Ok(body) = body {
            let body = body.to_bytes();
            assert!(!body.windows(CANARY.len()).any(|w| w == CANARY));
        }
    }
});
