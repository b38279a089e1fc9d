//! Property tests of the token round trip: anything the signer signs
//! verifies, any change to a token is refused, and no path outside a grant's
//! scope is ever accepted.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{
    Key, Keyring, MediaPath, Method, Methods, RequestFacts, Signer, Verifier, VerifyError,
};
use proptest::prelude::*;

fn ring() -> Keyring {
    Keyring::new(Key::new("prop", &[0x5a; 32]).unwrap())
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._~%+;=&'()é中-]{1,16}".prop_filter("dot segment", |s| s != "." && s != "..")
}

fn media_path() -> impl Strategy<Value = String> {
    (proptest::collection::vec(segment(), 1..5), any::<bool>())
        .prop_map(|(segs, dir)| {
            let mut p = format!("/{}", segs.join("/"));
            if dir {
                p.push('/');
            }
            p
        })
        // Below the path-form marker is reserved (the signer refuses it).
        .prop_filter("reserved", |p| !p.starts_with("/_mg/"))
}

prop_compose! {
    fn claims()(
        path in media_path(),
        user in "[!-~]{1,40}",
        ttl in 1i64..7 * 86400,
        ip in proptest::option::of(any::<[u8; 4]>()),
        attach in proptest::option::of("[^/\\\\\\p{Cc}]{1,30}"),
        generation in proptest::option::of(any::<u64>()),
    ) -> (String, String, i64, Option<[u8; 4]>, Option<String>, Option<u64>) {
        (path, user, ttl, ip, attach, generation)
    }
}

/// A link for `user` to `path`: a prefix link when it names a directory.
fn start<'a>(
    signer: &'a Signer,
    user: &'a str,
    path: &'a str,
) -> mediagate_signer::LinkBuilder<'a> {
    if path.ends_with('/') {
        signer.prefix(user, path)
    } else {
        signer.link(user, path)
    }
}

fn request_path(scope: &str) -> String {
    if scope.ends_with('/') {
        format!("{scope}file.bin")
    } else {
        scope.to_owned()
    }
}

prop_compose! {
    /// Upload claims: a size, a digest, replace (never below a prefix).
    fn upload_claims()(
        path in media_path(),
        max in proptest::option::of(any::<u64>()),
        digest in proptest::option::of(any::<[u8; 32]>()),
        replace in any::<bool>(),
        also_read in any::<bool>(),
    ) -> (String, Option<u64>, Option<[u8; 32]>, bool, bool) {
        let replace = replace && !path.ends_with('/');
        (path, max, digest, replace, also_read)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn upload_links_round_trip((path, max, digest, replace, also_read) in upload_claims()) {
        let signer = Signer::new(ring());
        let methods = if also_read { Methods::PUT | Methods::READ } else { Methods::PUT };
        let mut b = start(&signer, "u", &path)
            .issued_at(t0())
            .ttl(Duration::minutes(5))
            .methods(methods)
            .replace(replace);
        if let Some(m) = max {
            b = b.max_size(m);
        }
        if let Some(d) = digest {
            b = b.sha256(d);
        }
        let link = b.sign().unwrap();
        let req_path = request_path(&path);
        let mp = MediaPath::parse(&req_path).unwrap();
        let grant = Verifier::new(ring())
            .verify(link.token(), &RequestFacts::new(Method::Put, &mp), t0())
            .unwrap();
        let up = grant.claims().upload();
        prop_assert_eq!(up.max_size, max);
        prop_assert_eq!(up.sha256, digest);
        prop_assert_eq!(up.replace, replace);
        prop_assert_eq!(grant.claims().methods(), methods);
        // The size limit holds at its edge.
        if let Some(m) = max {
            prop_assert!(grant.claims().admits_length(m).is_ok());
            if m < u64::MAX {
                prop_assert!(grant.claims().admits_length(m + 1).is_err());
            }
        }
        // A download with an upload-only link is refused.
        let get = Verifier::new(ring()).verify(link.token(), &RequestFacts::new(Method::Get, &mp), t0());
        prop_assert_eq!(get.is_ok(), also_read);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_links_verify((path, user, ttl, ip, attach, generation) in claims()) {
        let signer = Signer::new(ring());
        let mut b = start(&signer, &user, &path).issued_at(t0()).ttl(Duration::seconds(ttl));
        if let Some(ip) = ip {
            b = b.client_ip(ip.into());
        }
        if let Some(a) = &attach {
            b = b.attachment(a);
        }
        if let Some(g) = generation {
            b = b.generation(g);
        }
        let link = b.clone().sign().unwrap();
        // Minting and rendering in one step gives the same strings.
        prop_assert_eq!(b.clone().token().unwrap(), link.token());
        prop_assert_eq!(b.clone().url("https://m.example/media").unwrap(), link.url("https://m.example/media"));
        prop_assert_eq!(b.path_form("/m").unwrap(), link.path_form("/m"));
        let req_path = request_path(&path);
        let mp = MediaPath::parse(&req_path).unwrap();
        let mut facts = RequestFacts::new(Method::Get, &mp);
        if let Some(ip) = ip {
            facts = facts.client_ip(ip.into());
        }
        let grant = Verifier::new(ring()).verify(link.token(), &facts, t0()).unwrap();
        prop_assert_eq!(grant.claims().subject(), user.as_str());
        prop_assert_eq!(grant.claims().path(), path.as_str());
        prop_assert_eq!(grant.claims().filename(), attach.as_deref());
        prop_assert_eq!(grant.claims().generation(), generation);
        prop_assert_eq!(grant.claims().expires_at(), t0() + Duration::seconds(ttl));

        // Every rendering carries the token and decodes back to the path.
        let url = link.url("https://m.example/media");
        let (url_path, query) = url["https://m.example/media".len()..].split_once('?').unwrap();
        let decoded = MediaPath::from_uri_path(url_path).unwrap();
        prop_assert_eq!(decoded.as_str(), path.as_str());
        prop_assert_eq!(
            mediagate_signer::transport::token_from_query(query).unwrap(),
            Some(link.token())
        );
        let pf = link.path_form("");
        let (tok, rest) = mediagate_signer::transport::split_path_form(&pf).unwrap().unwrap();
        prop_assert_eq!(tok, link.token());
        let decoded = MediaPath::from_uri_path(rest).unwrap();
        prop_assert_eq!(decoded.as_str(), path.as_str());
    }

    #[test]
    fn any_bit_flip_is_refused(path in media_path(), bit in any::<proptest::sample::Index>()) {
        let signer = Signer::new(ring());
        let link = start(&signer, "u", &path).issued_at(t0()).ttl(Duration::minutes(5)).sign().unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(link.token()).unwrap();
        let i = bit.index(raw.len() * 8);
        raw[i / 8] ^= 1 << (i % 8);
        let tampered = URL_SAFE_NO_PAD.encode(&raw);
        let req_path = request_path(&path);
        let mp = MediaPath::parse(&req_path).unwrap();
        let err = Verifier::new(ring())
            .verify(&tampered, &RequestFacts::new(Method::Get, &mp), t0())
            .unwrap_err();
        prop_assert!(matches!(
            err,
            VerifyError::BadSignature | VerifyError::UnknownKey | VerifyError::UnsupportedVersion(_)
                | VerifyError::Malformed(_)
        ), "{:?}", err);
    }

    #[test]
    fn any_character_change_is_refused(path in media_path(), pos in any::<proptest::sample::Index>(), c in "[A-Za-z0-9_=+/ -]") {
        let signer = Signer::new(ring());
        let link = start(&signer, "u", &path).issued_at(t0()).ttl(Duration::minutes(5)).sign().unwrap();
        let token = link.token();
        let i = pos.index(token.len());
        let mut changed = String::with_capacity(token.len());
        changed.push_str(&token[..i]);
        changed.push_str(&c);
        changed.push_str(&token[i + 1..]);
        prop_assume!(changed != token);
        let req_path = request_path(&path);
        let mp = MediaPath::parse(&req_path).unwrap();
        prop_assert!(Verifier::new(ring()).verify(&changed, &RequestFacts::new(Method::Get, &mp), t0()).is_err());
    }

    #[test]
    fn paths_outside_the_scope_are_refused(scope in media_path(), other in media_path()) {
        let signer = Signer::new(ring());
        let link = start(&signer, "u", &scope).issued_at(t0()).ttl(Duration::minutes(5)).sign().unwrap();
        let req_path = request_path(&other);
        let mp = MediaPath::parse(&req_path).unwrap();
        let result = Verifier::new(ring()).verify(link.token(), &RequestFacts::new(Method::Get, &mp), t0());
        let inside = if scope.ends_with('/') { req_path.starts_with(&scope) } else { req_path == scope };
        prop_assert_eq!(result.is_ok(), inside);
        if !inside {
            prop_assert_eq!(result.unwrap_err(), VerifyError::ScopeMismatch);
        }
    }

    #[test]
    fn prefix_boundaries_hold(dir in segment(), suffix in "[a-z0-9._-]{1,5}", file in segment()) {
        let scope = format!("/{dir}/");
        let signer = Signer::new(ring());
        let link = start(&signer, "u", &scope).issued_at(t0()).ttl(Duration::minutes(5)).sign().unwrap();
        let v = Verifier::new(ring());
        let sibling = format!("/{dir}{suffix}/{file}");
        let inside = format!("/{dir}/{file}");
        let check = |p: &str| {
            let mp = MediaPath::parse(p).unwrap();
            v.verify(link.token(), &RequestFacts::new(Method::Get, &mp), t0()).is_ok()
        };
        prop_assert!(!check(&sibling));
        prop_assert!(check(&inside));
        let parent = format!("/{dir}");
        prop_assert!(!check(&parent));
    }

    #[test]
    fn verifier_never_panics_on_garbage(token in "[A-Za-z0-9_=+/-]{0,200}") {
        let mp = MediaPath::parse("/a").unwrap();
        let _ = Verifier::new(ring()).verify(&token, &RequestFacts::new(Method::Get, &mp), t0());
        let _ = mediagate_signer::decode_unverified(&token);
    }
}
