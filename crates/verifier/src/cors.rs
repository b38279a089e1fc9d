//! Cross-origin reads (CORS): which web origins' scripts may read the
//! responses, and the answer to a browser's preflight.
//!
//! A page on `https://app.example.com` that plays a video from
//! `https://media.example.com` through a script player (hls.js, dash.js,
//! Shaka, or plain `fetch`) reads every playlist and segment with
//! cross-origin requests, and the browser hands it nothing unless the
//! response names its origin. `<video src>` and `<img>` without
//! `crossorigin` need none of this. Pure header logic: the service applies
//! it to every response.

use http::HeaderMap;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderValue, ORIGIN, VARY,
};

/// Which web origins may read responses from scripts.
///
/// The default, [`Cors::Off`], sends no CORS header: only pages on the
/// media server's own origin, and plain `<video>`/`<img>` loads, can use
/// the media. Links in the query or path form carry their own credential,
/// so [`Cors::AnyOrigin`] discloses nothing a link holder could not fetch
/// anyway; [`Cors::Origins`] names the sites that may embed the media and
/// is the only mode that lets a page send the cookie transport's cookie.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Cors {
    /// No CORS headers (the default).
    #[default]
    Off,
    /// Any origin may read: `Access-Control-Allow-Origin: *` on every
    /// response. Browsers then send no cookies, so links must travel in the
    /// query or the path.
    AnyOrigin,
    /// Only these origins may read; the request's `Origin` is echoed when it
    /// is one of them, and every response carries `Vary: Origin`.
    Origins {
        /// Origins as browsers send them: `https://app.example.com`,
        /// `http://localhost:3000` (scheme, host, and a port other than the
        /// scheme's default; no path, no trailing slash). `null` and `*`
        /// are refused.
        origins: Vec<String>,
        /// Adds `Access-Control-Allow-Credentials: true`, so that pages on
        /// these origins may send cookies (the cookie transport) with
        /// `credentials: "include"`.
        credentials: bool,
    },
}

/// Why an origin in [`Cors::Origins`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CORS origin must be like https://app.example.com (got {0:?})")]
pub struct InvalidOrigin(pub String);

/// The request headers a preflight may ask for: ranges and conditionals,
/// what players send. Others fail the preflight in the browser.
const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "range, if-range, if-none-match, if-modified-since, if-match, if-unmodified-since",
);
/// The response headers beyond the CORS-safelisted ones that scripts may
/// read: what a player needs for ranges and revalidation, and the download
/// name.
const EXPOSE_HEADERS: HeaderValue =
    HeaderValue::from_static("accept-ranges, content-range, content-disposition, etag");
const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD");
/// With uploads on: `PUT` too, and the headers an upload sends.
const ALLOW_METHODS_UPLOADS: HeaderValue = HeaderValue::from_static("GET, HEAD, PUT");
const ALLOW_HEADERS_UPLOADS: HeaderValue = HeaderValue::from_static(
    "range, if-range, if-none-match, if-modified-since, if-match, if-unmodified-since, \
     content-type, content-digest",
);
/// How long a browser may reuse a preflight's answer (Chromium's cap).
const MAX_AGE: HeaderValue = HeaderValue::from_static("7200");
const ANY: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");

/// The settled form of a [`Cors`] setting.
#[derive(Debug, Clone)]
pub(crate) enum CorsRules {
    Off,
    Any,
    List {
        origins: Vec<HeaderValue>,
        credentials: bool,
    },
}

/// A preflight's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preflight {
    /// Not a preflight, or CORS is off: an ordinary `OPTIONS` request.
    Ordinary,
    /// The origin may read: answer 204 with [`preflight_headers`](CorsRules::preflight_headers).
    Allowed,
    /// The origin may not.
    Refused,
}

impl CorsRules {
    /// Checks and normalizes a [`Cors`] setting.
    pub(crate) fn new(cors: Cors) -> Result<Self, InvalidOrigin> {
        Ok(match cors {
            Cors::Off => CorsRules::Off,
            Cors::AnyOrigin => CorsRules::Any,
            Cors::Origins {
                origins,
                credentials,
            } => CorsRules::List {
                origins: origins
                    .iter()
                    .map(|o| normalize_origin(o).ok_or_else(|| InvalidOrigin(o.clone())))
                    .collect::<Result<_, _>>()?,
                credentials,
            },
        })
    }

    /// The request's `Origin` when it may read; `None` otherwise.
    fn allowed_origin<'a>(&'a self, req: &HeaderMap) -> Option<&'a HeaderValue> {
        let CorsRules::List { origins, .. } = self else {
            return None;
        };
        let mut sent = req.get_all(ORIGIN).iter();
        let (Some(origin), None) = (sent.next(), sent.next()) else {
            return None;
        };
        origins.iter().find(|o| *o == origin)
    }

    /// Adds the CORS headers for a request to its response (any response:
    /// a refusal too, so that a player can read why and fetch a new link).
    pub(crate) fn decorate(&self, req: &HeaderMap, res: &mut HeaderMap) {
        match self {
            CorsRules::Off => {}
            CorsRules::Any => {
                res.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
                res.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
            }
            CorsRules::List { credentials, .. } => {
                // Whatever the Origin, a cache must not hand this response
                // to another origin.
                res.append(VARY, HeaderValue::from_static("origin"));
                if let Some(origin) = self.allowed_origin(req) {
                    res.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                    res.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
                    if *credentials {
                        res.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
                    }
                }
            }
        }
    }

    /// Whether an `OPTIONS` request is a preflight (it has `Origin` and
    /// `Access-Control-Request-Method`), and if so whether its origin may
    /// read. The method and headers asked for are not judged here: the
    /// answer lists what is allowed, and the browser compares.
    pub(crate) fn preflight(&self, req: &HeaderMap) -> Preflight {
        let is_preflight =
            req.contains_key(ORIGIN) && req.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        match self {
            _ if !is_preflight => Preflight::Ordinary,
            CorsRules::Off => Preflight::Ordinary,
            CorsRules::Any => Preflight::Allowed,
            CorsRules::List { .. } if self.allowed_origin(req).is_some() => Preflight::Allowed,
            CorsRules::List { .. } => Preflight::Refused,
        }
    }

    /// The headers of an allowed preflight's answer, beside those of
    /// [`decorate`](Self::decorate).
    /// With `uploads`, `PUT` and the headers an upload sends are allowed
    /// too.
    pub(crate) fn preflight_headers(res: &mut HeaderMap, uploads: bool) {
        if uploads {
            res.insert(ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS_UPLOADS);
            res.insert(ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS_UPLOADS);
        } else {
            res.insert(ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
            res.insert(ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        }
        res.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    }
}

/// An origin as a browser serializes it, or `None`: lowercase `http` or
/// `https`, `://`, a host (DNS name, IPv4 address or bracketed IPv6
/// address) in lowercase, and a port only when it is not the scheme's
/// default, without leading zeros.
fn normalize_origin(origin: &str) -> Option<HeaderValue> {
    let lower = origin.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = match rest.rsplit_once(':') {
        // A bracketed IPv6 address holds colons of its own.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // Browsers write an IPv6 address in its shortest form.
        Some(v6) => format!("[{}]", v6.parse::<std::net::Ipv6Addr>().ok()?),
        None if valid_name(host) => host.to_owned(),
        None => return None,
    };
    let port = match port {
        None => None,
        Some(p) => {
            let n: u16 = p.parse().ok().filter(|&n| n != 0)?;
            if p.starts_with('0') || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (n != default_port).then_some(n)
        }
    };
    let serialized = match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    };
    HeaderValue::from_str(&serialized).ok()
}

/// A DNS name or an IPv4 address: letters, digits and hyphens in
/// non-empty dot-separated labels, none starting or ending with a hyphen.
fn valid_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn list(origins: &[&str], credentials: bool) -> CorsRules {
        CorsRules::new(Cors::Origins {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            credentials,
        })
        .unwrap()
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        let n = |o| normalize_origin(o).map(|v| v.to_str().unwrap().to_owned());
        for (given, sent) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[::1]", "http://[::1]"),
            ("http://[0:0::1]", "http://[::1]"),
            (
                "https://xn--bcher-kva.example",
                "https://xn--bcher-kva.example",
            ),
        ] {
            assert_eq!(n(given).as_deref(), Some(sent), "{given:?}");
        }
        for bad in [
            "",
            "*",
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com:",
            "https://app.example.com:0",
            "https://app.example.com:65536",
            "https://app.example.com:+443",
            "https://app.example.com:0443",
            "https://app..example.com",
            "https://-app.example.com",
            "https://app-.example.com",
            "https://app.example.com?x",
            "https://app.example.com#x",
            "https://[::1",
            "https://[nope]",
            "https://a b.example",
            "https://app.example.com\r\nx: y",
            "https://bücher.example",
        ] {
            assert_eq!(n(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_refused_origin_is_named_in_the_error() {
        let err = CorsRules::new(Cors::Origins {
            origins: vec!["https://ok.example".into(), "null".into()],
            credentials: false,
        })
        .unwrap_err();
        assert_eq!(err, InvalidOrigin("null".into()));
    }

    #[test]
    fn off_adds_nothing_and_answers_no_preflight() {
        let req = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
        ]);
        let mut res = HeaderMap::new();
        CorsRules::Off.decorate(&req, &mut res);
        assert!(res.is_empty());
        assert_eq!(CorsRules::Off.preflight(&req), Preflight::Ordinary);
    }

    #[test]
    fn any_origin_allows_every_origin_without_credentials() {
        let rules = CorsRules::new(Cors::AnyOrigin).unwrap();
        for req in [
            headers(&[("origin", "https://anyone.example")]),
            HeaderMap::new(),
        ] {
            let mut res = HeaderMap::new();
            rules.decorate(&req, &mut res);
            assert_eq!(res.get(ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(), "*");
            assert_eq!(
                res.get(ACCESS_CONTROL_EXPOSE_HEADERS),
                Some(&EXPOSE_HEADERS)
            );
            assert!(!res.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
            assert!(!res.contains_key(VARY));
        }
    }

    #[test]
    fn a_listed_origin_is_echoed_and_others_get_only_vary() {
        let rules = list(&["https://app.example", "http://localhost:3000"], false);
        let mut res = HeaderMap::new();
        rules.decorate(&headers(&[("origin", "http://localhost:3000")]), &mut res);
        assert_eq!(
            res.get(ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(res.get(VARY).unwrap(), "origin");
        assert!(!res.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        for req in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "https://app.example.evil.example")]),
            headers(&[("origin", "https://APP.example")]),
            headers(&[("origin", "null")]),
            // Two Origin fields are not an origin.
            headers(&[
                ("origin", "https://app.example"),
                ("origin", "https://app.example"),
            ]),
            HeaderMap::new(),
        ] {
            let mut res = HeaderMap::new();
            rules.decorate(&req, &mut res);
            assert_eq!(res.len(), 1, "{req:?}");
            assert_eq!(res.get(VARY).unwrap(), "origin");
        }
    }

    #[test]
    fn credentials_are_allowed_only_when_asked_for() {
        let rules = list(&["https://app.example"], true);
        let mut res = HeaderMap::new();
        rules.decorate(&headers(&[("origin", "https://app.example")]), &mut res);
        assert_eq!(res.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).unwrap(), "true");
        let mut res = HeaderMap::new();
        rules.decorate(&headers(&[("origin", "https://other.example")]), &mut res);
        assert!(!res.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[test]
    fn preflights_are_told_apart_and_judged_by_origin() {
        let rules = list(&["https://app.example"], false);
        let ask =
            |origin: &str| headers(&[("origin", origin), ("access-control-request-method", "GET")]);
        assert_eq!(
            rules.preflight(&ask("https://app.example")),
            Preflight::Allowed
        );
        assert_eq!(
            rules.preflight(&ask("https://evil.example")),
            Preflight::Refused
        );
        assert_eq!(
            rules.preflight(&headers(&[("origin", "https://app.example")])),
            Preflight::Ordinary
        );
        assert_eq!(
            rules.preflight(&headers(&[("access-control-request-method", "GET")])),
            Preflight::Ordinary
        );
        let any = CorsRules::new(Cors::AnyOrigin).unwrap();
        assert_eq!(
            any.preflight(&ask("https://evil.example")),
            Preflight::Allowed
        );
        let mut res = HeaderMap::new();
        CorsRules::preflight_headers(&mut res, false);
        assert_eq!(res.get(ACCESS_CONTROL_ALLOW_METHODS).unwrap(), "GET, HEAD");
        assert!(
            res.get(ACCESS_CONTROL_ALLOW_HEADERS)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("range")
        );
    }
}
