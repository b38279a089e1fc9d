//! `Host` (RFC 9112 §3.2): a server must answer 400 to an HTTP/1.1 request
//! without one, to any request with more than one, and to one whose value
//! is not `uri-host [ ":" port ]` (RFC 3986). mediagate never routes by
//! host, but two hosts, or none, in one request is how request-smuggling
//! and cache-poisoning probes start: a proxy in front may read another
//! `Host` than the one a server behind it reads.

use http::header::HOST;
use http::{HeaderMap, Version};

use super::Single;

/// Whether the request's `Host` header field lines are acceptable for a
/// request of `version`. HTTP/1.0 may omit the header; HTTP/2 carries the
/// authority in `:authority` (`authority` here) and may omit the header
/// too, but an HTTP/2 request with both must name one host in both (RFC
/// 9113 §8.3.1), or a proxy in front and mediagate could read two.
pub(crate) fn is_acceptable(
    version: Version,
    authority: Option<&http::uri::Authority>,
    headers: &HeaderMap,
) -> bool {
    // A singleton: two lines, or bytes outside visible ASCII (which the
    // grammar has no room for either), are refused.
    match super::single(headers, HOST) {
        Single::Absent => version != Version::HTTP_11,
        Single::One(value) => {
            is_valid_host(value.as_bytes())
                && (version != Version::HTTP_2
                    || authority.is_none_or(|a| {
                        a.as_str().as_bytes().eq_ignore_ascii_case(value.as_bytes())
                    }))
        }
        Single::Invalid => false,
    }
}

/// `uri-host [ ":" port ]`, or empty (what a client sends when the target
/// has no authority). `uri-host` is an IPv6 literal in brackets or a
/// reg-name (which includes IPv4 addresses); userinfo is not allowed.
fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = std::str::from_utf8(&rest[..close]).ok();
        if literal
            .and_then(|l| l.parse::<std::net::Ipv6Addr>().ok())
            .is_none()
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        }
    };
    is_reg_name(host) && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// `*( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn headers(hosts: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for h in hosts {
            map.append(HOST, HeaderValue::from_bytes(h).unwrap());
        }
        map
    }

    #[test]
    fn one_host_is_required_on_http_1_1_only() {
        let one = headers(&[b"example.com"]);
        let none = headers(&[]);
        let two = headers(&[b"example.com", b"example.com"]);
        for v in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
            assert!(is_acceptable(v, None, &one), "{v:?}");
            assert!(!is_acceptable(v, None, &two), "{v:?}: two hosts");
        }
        assert!(!is_acceptable(Version::HTTP_11, None, &none));
        let opaque = headers(&[b"caf\xc3\xa9.example"]);
        assert!(
            !is_acceptable(Version::HTTP_11, None, &opaque),
            "not visible ASCII"
        );
        assert!(is_acceptable(Version::HTTP_10, None, &none));
        assert!(is_acceptable(Version::HTTP_2, None, &none));
    }

    #[test]
    fn an_http2_authority_and_host_must_agree() {
        let authority = |a: &str| a.parse::<http::uri::Authority>().unwrap();
        let host = headers(&[b"Media.Example:8443"]);
        let h2 = Version::HTTP_2;
        assert!(is_acceptable(
            h2,
            Some(&authority("media.example:8443")),
            &host
        ));
        assert!(is_acceptable(h2, Some(&authority("x")), &headers(&[])));
        for other in ["evil.example:8443", "media.example", "media.example:443"] {
            assert!(
                !is_acceptable(h2, Some(&authority(other)), &host),
                "{other}"
            );
        }
        // HTTP/1.1 in absolute form: the target's authority wins (RFC 9112
        // §3.2.2) and the Host line is only checked for its form.
        let a = authority("evil.example");
        assert!(is_acceptable(Version::HTTP_11, Some(&a), &host));
    }

    #[test]
    fn host_values() {
        let good: &[&[u8]] = &[
            b"",
            b"example.com",
            b"media.example.com:8443",
            b"127.0.0.1",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:8080",
            b"[2001:db8::7]:",
            b"xn--caf-dma.example",
            b"ex%41mple.com",
            b"a_b~c!$&'()*+,;=",
            b"host:",
        ];
        for h in good {
            assert!(is_valid_host(h), "{:?}", String::from_utf8_lossy(h));
        }
        let bad: &[&[u8]] = &[
            b"a b",
            b"user@example.com",
            b"example.com:80:80",
            b"example.com:http",
            b"example.com/path",
            b"example.com?x",
            b"exa%2",
            b"exa%zz.com",
            b"[::1",
            b"[::1]x",
            b"[not-an-ip]",
            b"::1",
            b"\"quoted\"",
            b"a\\b",
            b"caf\xc3\xa9.example",
        ];
        for h in bad {
            assert!(!is_valid_host(h), "{:?}", String::from_utf8_lossy(h));
        }
    }

    proptest! {
        #[test]
        fn names_of_allowed_bytes_with_any_port_pass(
            name in "[a-zA-Z0-9._~!$&'()*+,;=-]{0,40}",
            port in proptest::option::of("[0-9]{0,6}"),
        ) {
            let value = match port {
                Some(p) => format!("{name}:{p}"),
                None => name,
            };
            prop_assert!(is_valid_host(value.as_bytes()));
        }

        #[test]
        fn any_byte_outside_the_grammar_fails(
            name in "[a-z0-9.-]{0,20}",
            bad in prop::sample::select(
                b" \"#/<>?@[\\]^`{|}\t\x7f\x80\xff".to_vec()
            ),
            at in 0usize..21,
        ) {
            let mut value = name.into_bytes();
            value.insert(at.min(value.len()), bad);
            prop_assert!(!is_valid_host(&value));
        }
    }
}
