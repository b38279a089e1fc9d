//! Path traversal and path confusion: the public corpus in
//! `../shared/corpus/traversal-public.txt` (when present) plus this crate's
//! own `tests/data/traversal-extra.txt`, each sent over a raw socket both
//! unsigned and with a link the signer agrees to sign (the whole root).
//! Pass: never a byte from outside the root (canaries are planted beside
//! it), never a 5xx, never a Location header.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{CANARY, TestServer, raw};
use mediagate_verifier::signer::MediaPath;
use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let mut lines = Vec::new();
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/traversal-public.txt"
    );
    let own = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/traversal-extra.txt"
    );
    for file in [shared, own] {
        if let Ok(text) = std::fs::read_to_string(file) {
            lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        } else {
            eprintln!("note: {file} not found; skipping it");
        }
    }
    assert!(lines.len() >= 50, "the corpus must not be empty");
    lines
}

fn with_token(line: &str, token: &str) -> String {
    let sep = if line.contains('?') { '&' } else { '?' };
    format!("{line}{sep}mg_token={token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_never_escapes_the_root() {
    let s = TestServer::start_with(|b| b.mount("/"), Default::default()).await;
    let token = s.token("/");
    let mut served = 0;
    for line in corpus() {
        let path_form = if line.starts_with('/') {
            format!("/_mg/{token}{line}")
        } else {
            line.clone()
        };
        for target in [line.clone(), with_token(&line, &token), path_form] {
            let req = [
                b"GET ",
                target.as_bytes(),
                b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            ]
            .concat();
            let r = raw(s.addr, &req).await;
            assert!(r.status < 500, "{target:?} -> {}", r.status);
            assert!(r.header("location").is_none(), "{target:?}");
            assert!(!r.text().contains(CANARY), "{target:?} leaked a canary");
            if r.status == 200 {
                served += 1;
                // Whatever is served is a file inside the root.
                assert!(!r.text().contains("CANARY"), "{target:?}");
            }
        }
    }
    eprintln!("{served} corpus requests were served a file from inside the root");
    s.shutdown().await.unwrap();
}

#[test]
fn the_signer_refuses_what_the_verifier_would_refuse() {
    // Every corpus path that decodes to a canonical path is one the signer
    // would sign, and vice versa: one canonical form on both sides.
    for line in corpus() {
        let path = line.split(['?', '#']).next().unwrap_or("");
        if let Ok(p) = MediaPath::from_uri_path(path) {
            assert!(MediaPath::parse(p.as_str()).is_ok(), "{line}");
            assert!(
                !p.as_str().split('/').any(|s| s == ".." || s == "."),
                "{line}"
            );
        }
    }
}

/// One media tree and service for all cases (built once: cases run fast).
fn shared_gate() -> &'static (mediagate_verifier::MediaGate, String) {
    static GATE: std::sync::OnceLock<(tempfile::TempDir, (mediagate_verifier::MediaGate, String))> =
        std::sync::OnceLock::new();
    &GATE
        .get_or_init(|| {
            let (dir, root) = common::media_tree();
            let keyring = mediagate_verifier::signer::Keyring::new(
                mediagate_verifier::signer::Key::new("p", &[1u8; 32]).unwrap(),
            );
            let gate = mediagate_verifier::MediaGate::builder(&root, keyring.clone())
                .build()
                .unwrap();
            let token = mediagate_verifier::signer::Signer::new(keyring)
                .prefix("u", "/")
                .ttl(mediagate_verifier::signer::time::Duration::hours(1))
                .sign()
                .unwrap()
                .into_token();
            (dir, (gate, token))
        })
        .1
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "..",
        ".",
        "%2e%2e",
        "%2E.",
        ".%2e",
        "%252e%252e",
        "pub",
        "a.txt",
        "link-out",
        "rel-out",
        "dir-out",
        "secret.txt",
        "files-evil",
        "srv",
        "files",
        "%2f",
        "%5c",
        "\\",
        "%00",
        "",
        "%c0%ae",
        "dir",
        "fifo",
        "..;",
        "%3b",
        "~",
        "%ef%bc%8e",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// No generated path, signed for the whole root, ever resolves outside it.
    #[test]
    fn no_generated_path_escapes(pieces in prop::collection::vec(piece(), 1..7)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (gate, token) = shared_gate();
        let target = format!("/{}?mg_token={token}", pieces.join("/"));
        let Ok(req) = http::Request::get(target.as_str()).body(http_body_util::Empty::<bytes::Bytes>::new()) else {
            return Ok(());
        };
        let (status, body) = rt.block_on(async {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let Ok(res) = gate.clone().oneshot(req).await;
            (res.status(), res.into_body().collect().await.map(|b| b.to_bytes()))
        });
        prop_assert!(status.as_u16() < 500, "{} -> {}", target, status);
        if let Ok(body) = body {
            prop_assert!(!String::from_utf8_lossy(&body).contains(CANARY), "{}", target);
        }
    }
}
