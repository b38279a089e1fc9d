//! Finding the token of a request in the enabled transports.
//!
//! A token in the URL (the path form or the query) is the one the client
//! chose by following that link: it is used, and cookies are not looked at.
//! Two in the URL (path and query, or the query parameter twice) are
//! ambiguous (400). Without one, the token cookies are the candidates: a
//! browser sends one per matching cookie path, the most specific first, and
//! each is tried in that order (up to [`MAX_COOKIE_TOKENS`]; more is
//! ambiguous). None at all is a 403.

use http::HeaderMap;
use http::header::COOKIE;
use mediagate_signer::transport::{self, TransportError};

use crate::reject::Reject;

/// Which ways of carrying a token the service accepts. Start from
/// [`Transports::default`] (all three) and turn off what is not wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transports {
    /// `?mg_token=...`
    pub query: bool,
    /// `Cookie: mg_token=...`
    pub cookie: bool,
    /// `/_mg/<token>/path`
    pub path: bool,
}

impl Default for Transports {
    /// All three.
    fn default() -> Self {
        Transports {
            query: true,
            cookie: true,
            path: true,
        }
    }
}

/// The most token cookies one request may carry. Each costs a MAC check;
/// nested scopes deeper than this are not a use anyone has.
pub(crate) const MAX_COOKIE_TOKENS: usize = 4;

/// The candidate tokens and the raw path below them (the mount-relative
/// path, without the `/_mg/<token>` prefix when the token came in the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located<'a> {
    tokens: [&'a str; MAX_COOKIE_TOKENS],
    len: usize,
    pub path: &'a str,
}

impl<'a> Located<'a> {
    fn none(path: &'a str) -> Self {
        Located {
            tokens: [""; MAX_COOKIE_TOKENS],
            len: 0,
            path,
        }
    }

    fn one(token: &'a str, path: &'a str) -> Self {
        let mut found = Located::none(path);
        found.tokens[0] = token;
        found.len = 1;
        found
    }

    /// Adds a candidate; more than [`MAX_COOKIE_TOKENS`] is ambiguous.
    fn push(&mut self, token: &'a str) -> Result<(), Reject> {
        let slot = self
            .tokens
            .get_mut(self.len)
            .ok_or(Reject::AmbiguousToken)?;
        *slot = token;
        self.len += 1;
        Ok(())
    }

    /// The tokens to try, in order; at least one.
    pub(crate) fn tokens(&self) -> &[&'a str] {
        &self.tokens[..self.len]
    }
}

fn transport_error(e: TransportError) -> Reject {
    match e {
        TransportError::Duplicate | TransportError::EncodedName => Reject::AmbiguousToken,
        _ => Reject::MalformedToken,
    }
}

/// Finds the candidate tokens of a request.
pub(crate) fn locate<'a>(
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    enabled: Transports,
) -> Result<Located<'a>, Reject> {
    let mut in_path = None;
    let mut rest = path;
    if enabled.path {
        if let Some((token, below)) = transport::split_path_form(path).map_err(transport_error)? {
            in_path = Some(token);
            rest = below;
        }
    }
    let in_query = if enabled.query {
        transport::token_from_query(query.unwrap_or("")).map_err(transport_error)?
    } else {
        None
    };
    match (in_path, in_query) {
        (Some(_), Some(_)) => return Err(Reject::AmbiguousToken),
        (Some(token), None) | (None, Some(token)) => return Ok(Located::one(token, rest)),
        (None, None) => {}
    }
    if enabled.cookie {
        let mut found = Located::none(rest);
        // HTTP/2 may split the cookies over several header lines.
        let lines = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        for token in lines.flat_map(transport::tokens_from_cookie_header) {
            found.push(token)?;
        }
        if found.len > 0 {
            return Ok(found);
        }
    }
    Err(Reject::MissingToken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn all() -> Transports {
        Transports::default()
    }

    fn cookies(lines: &[&'static str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for l in lines {
            m.append(COOKIE, HeaderValue::from_static(l));
        }
        m
    }

    fn found<'a>(r: Result<Located<'a>, Reject>) -> Result<(Vec<&'a str>, &'a str), Reject> {
        r.map(|l| (l.tokens().to_vec(), l.path))
    }

    #[test]
    fn one_token_from_any_transport() {
        let none = HeaderMap::new();
        assert_eq!(
            found(locate("/a", Some("mg_token=T"), &none, all())),
            Ok((vec!["T"], "/a"))
        );
        assert_eq!(
            found(locate("/_mg/T/a/b", None, &none, all())),
            Ok((vec!["T"], "/a/b"))
        );
        let c = cookies(&["x=1; mg_token=T"]);
        assert_eq!(found(locate("/a", None, &c, all())), Ok((vec!["T"], "/a")));
    }

    #[test]
    fn a_token_in_the_url_wins_over_cookies() {
        let c = cookies(&["mg_token=C; mg_token=D"]);
        assert_eq!(
            found(locate("/a", Some("mg_token=T"), &c, all())),
            Ok((vec!["T"], "/a"))
        );
        assert_eq!(
            found(locate("/_mg/T/a", None, &c, all())),
            Ok((vec!["T"], "/a"))
        );
        // Cookies are not even read then: a malformed one does not matter.
        let bad = cookies(&["mg_token="]);
        assert_eq!(
            found(locate("/a", Some("mg_token=T"), &bad, all())),
            Ok((vec!["T"], "/a"))
        );
    }

    #[test]
    fn every_token_cookie_is_a_candidate_in_order() {
        let c = cookies(&["mg_token=A; x=1", "mg_token=B; mg_token=; mg_token=\"C\""]);
        assert_eq!(
            found(locate("/a", None, &c, all())),
            Ok((vec!["A", "B", "C"], "/a"))
        );
        let four = cookies(&["mg_token=A; mg_token=B; mg_token=C; mg_token=D"]);
        assert_eq!(
            found(locate("/a", None, &four, all())).map(|f| f.0.len()),
            Ok(4)
        );
        let five = cookies(&[
            "mg_token=A; mg_token=B; mg_token=C; mg_token=D",
            "mg_token=E",
        ]);
        assert_eq!(
            found(locate("/a", None, &five, all())),
            Err(Reject::AmbiguousToken)
        );
        // Empty values are no candidates.
        assert_eq!(
            found(locate("/a", None, &cookies(&["mg_token="]), all())),
            Err(Reject::MissingToken)
        );
    }

    #[test]
    fn zero_tokens_or_two_in_the_url_are_refused() {
        let none = HeaderMap::new();
        assert_eq!(
            found(locate("/a", None, &none, all())),
            Err(Reject::MissingToken)
        );
        assert_eq!(
            found(locate("/_mg/T/a", Some("mg_token=T"), &none, all())),
            Err(Reject::AmbiguousToken)
        );
        assert_eq!(
            found(locate("/a", Some("mg_token=T&mg_token=U"), &none, all())),
            Err(Reject::AmbiguousToken)
        );
        let only_query = Transports {
            query: true,
            cookie: false,
            path: false,
        };
        // A disabled transport is not looked at: "/_mg/T/a" is a plain path,
        // and cookies are ignored.
        assert_eq!(
            found(locate(
                "/_mg/T/a",
                None,
                &cookies(&["mg_token=C"]),
                only_query
            )),
            Err(Reject::MissingToken)
        );
    }
}
