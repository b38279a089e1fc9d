//! Forged and malformed links against the real server: the classes of
//! signed-URL bugs seen in other systems (parameter confusion, alternative
//! encodings, truncated or extended tags, length extension, key confusion,
//! lifetime and scope abuse). Pass: the right 4xx and reason, quickly.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::TestServer;
use mediagate_verifier::signer::time::{Duration as Ttl, OffsetDateTime};
use mediagate_verifier::signer::{Key, Keyring, Signer};

fn flip(token: &str, byte_from_end: usize) -> String {
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    let i = raw.len() - byte_from_end;
    raw[i] ^= 0x01;
    URL_SAFE_NO_PAD.encode(raw)
}

/// A token for /pub/a.txt from another signer.
fn token_from(signer: &Signer, ttl: Ttl) -> String {
    signer
        .link("tester", "/pub/a.txt")
        .ttl(ttl)
        .sign()
        .unwrap()
        .into_token()
}

#[tokio::test]
async fn forged_links_get_the_right_refusal() {
    let s = TestServer::start().await;
    let good = s.token("/pub/a.txt");
    let raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let payload = &raw[..raw.len() - 32];
    // Same key id, another secret; another key id; a signer that allows
    // lifetimes the verifier does not.
    let other_key = token_from(
        &Signer::new(Keyring::new(Key::new("test", &[7u8; 32]).unwrap())),
        Ttl::minutes(5),
    );
    let unknown_key = token_from(
        &Signer::new(Keyring::new(Key::new("other", &[42u8; 32]).unwrap())),
        Ttl::minutes(5),
    );
    let long_lived = token_from(
        &Signer::new(s.keyring.clone()).max_ttl(Ttl::days(30)),
        Ttl::days(20),
    );
    let future = s
        .signer
        .link("tester", "/pub/a.txt")
        .issued_at(OffsetDateTime::now_utc() + Ttl::hours(2))
        .ttl(Ttl::minutes(5))
        .sign()
        .unwrap()
        .into_token();
    let prefix = s.token("/videos/");
    let get_only = s
        .signer
        .link("tester", "/pub/a.txt")
        .ttl(Ttl::minutes(5))
        .methods(mediagate_verifier::signer::Methods::GET)
        .sign()
        .unwrap()
        .into_token();
    // Length extension against H(key || msg): append data and keep the tag.
    let mut extended = payload.to_vec();
    extended.extend_from_slice(b"/../../secret.txt");
    extended.extend_from_slice(&raw[raw.len() - 32..]);
    let extended = URL_SAFE_NO_PAD.encode(extended);

    let q = |t: &str| format!("/media/pub/a.txt?mg_token={t}");
    let cases: Vec<(String, u16, &str)> = vec![
        // Parameter confusion.
        (q(""), 403, "malformed_token"),
        ("/media/pub/a.txt?mg_token".into(), 403, "malformed_token"),
        (
            format!("/media/pub/a.txt?MG_TOKEN={good}"),
            403,
            "missing_token",
        ),
        (
            format!("/media/pub/a.txt?Mg_Token={good}"),
            403,
            "missing_token",
        ),
        (
            format!("/media/pub/a.txt?mg_token[]={good}"),
            403,
            "missing_token",
        ),
        (
            format!("/media/pub/a.txt?mg_token%5B%5D={good}"),
            403,
            "missing_token",
        ),
        (
            format!("/media/pub/a.txt?mg%5ftoken={good}"),
            400,
            "ambiguous_token",
        ),
        (
            format!("/media/pub/a.txt?mg_token={good}&mg_token={other_key}"),
            400,
            "ambiguous_token",
        ),
        (
            format!("/media/pub/a.txt?mg_token={good};mg_token={other_key}"),
            403,
            "malformed_token",
        ),
        (
            format!("/media/pub/a.txt?mg_token={good}&expires=99999999999"),
            200,
            "",
        ),
        // Alternative spellings of the same bytes.
        (q(&format!("{good}=")), 403, "malformed_token"),
        (q(&format!("{good}%3D")), 403, "malformed_token"),
        (q(&format!("%41{}", &good[1..])), 403, "malformed_token"),
        (q(&format!("%20{good}")), 403, "malformed_token"),
        // Another byte string: refused, the reason depends on the bytes.
        (q(&good.to_uppercase()), 403, ""),
        // Truncated, extended, flipped tags.
        (
            q(&URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1])),
            403,
            "bad_signature",
        ),
        (
            q(&URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 16])),
            403,
            "bad_signature",
        ),
        (
            q(&URL_SAFE_NO_PAD.encode([&raw[..], b"\0"].concat())),
            403,
            "bad_signature",
        ),
        (q(&URL_SAFE_NO_PAD.encode(payload)), 403, "malformed_token"),
        (q(&flip(&good, 32)), 403, "bad_signature"),
        (q(&flip(&good, 1)), 403, "bad_signature"),
        (q(&flip(&good, raw.len())), 403, "unsupported_version"),
        (q(&extended), 403, "bad_signature"),
        // Key confusion.
        (q(&other_key), 403, "bad_signature"),
        (q(&unknown_key), 403, "unknown_key"),
        // Lifetime abuse.
        (q(&long_lived), 403, "lifetime_too_long"),
        (q(&future), 403, "not_yet_valid"),
        // Another path, prefix-boundary abuse, another method.
        (format!("/media/pub/b.txt?mg_token={good}"), 403, "scope"),
        (format!("/media/pub/a.txt/?mg_token={good}"), 403, "scope"),
        (format!("/media/pub/a.txtx?mg_token={good}"), 403, "scope"),
        (
            format!("/media/videos-private/x.ts?mg_token={prefix}"),
            403,
            "scope",
        ),
        (
            format!("/media/videos/../videos-private/x.ts?mg_token={prefix}"),
            400,
            "bad_path",
        ),
        (
            format!("/media/videos%2f..%2fvideos-private/x.ts?mg_token={prefix}"),
            400,
            "bad_path",
        ),
        (
            format!("/media/_mg/{prefix}/videos-private/x.ts"),
            403,
            "scope",
        ),
        (
            format!("/media/_mg/{prefix}/videos/../videos-private/x.ts"),
            400,
            "bad_path",
        ),
    ];
    // The standard alphabet, when it spells these bytes differently.
    let standard = STANDARD.encode(&raw);
    let mut cases = cases;
    if standard != good {
        cases.push((
            q(&standard
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")),
            403,
            "malformed_token",
        ));
    }
    cases.push((q(&format!("{good}==")), 403, "malformed_token"));
    for (i, (target, status, code)) in cases.iter().enumerate() {
        let started = Instant::now();
        let r = s.get(target, &[]).await;
        assert_eq!(r.status, *status, "case {i} {target}: {}", r.text());
        if !code.is_empty() {
            assert_eq!(r.text(), format!("{code}\n"), "{target}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{target} was slow"
        );
    }
    // A GET-only link refuses HEAD.
    let r = s.request("HEAD", &q(&get_only), &[]).await;
    assert_eq!(r.status, 403);
    s.shutdown().await.unwrap();
}

#[test]
fn the_signer_refuses_to_sign_what_attackers_would_inject() {
    let signer = Signer::new(Keyring::new(Key::new("k", &[1u8; 32]).unwrap()));
    let sign = |path: &str, user: &str| {
        signer
            .link(user, path)
            .ttl(Ttl::minutes(1))
            .sign()
            .map(|_| ())
    };
    for user in ["a\0b", "a b", "a\nb", "a\u{85}", "", "é"] {
        assert!(sign("/a", user).is_err(), "user {user:?}");
    }
    for path in ["/a/../b", "/a//b", "a", "/a\\b", "/a\0", "/./a", "/a\u{85}"] {
        assert!(sign(path, "u").is_err(), "path {path:?}");
    }
}
