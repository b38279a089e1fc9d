//! Finding the token of a request in the enabled transports: the rule the
//! verifier applies and the Python package's `check_request` shares.
//!
//! A token in the URL (the path form or the query) is the one the client
//! chose by following that link: it is used, and cookies are not looked at.
//! Two in the URL (path and query, or the query parameter twice) are
//! ambiguous. Without one, the token cookies are the candidates: a browser
//! sends one per matching cookie path, the most specific first, and each
//! is tried in that order (up to [`MAX_COOKIE_TOKENS`]; more is ambiguous).
//! None at all is [`LocateError::Missing`].

use super::{TransportError, split_path_form, token_from_query, tokens_from_cookie_header};

/// Which ways of carrying a token are accepted. Start from
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
pub const MAX_COOKIE_TOKENS: usize = 4;

/// Why a request's token cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// More than one token in the URL, more than [`MAX_COOKIE_TOKENS`]
    /// cookies, or a parameter name spelled with escapes.
    #[error("more than one token in the request")]
    Ambiguous,
    /// A token that is no token (an empty one, a malformed path form).
    #[error("the token is malformed")]
    Malformed,
    /// No token in any enabled transport.
    #[error("the request carries no token")]
    Missing,
}

impl LocateError {
    /// The verifier's reason code: `ambiguous_token`, `malformed_token` or
    /// `missing_token`.
    pub fn code(self) -> &'static str {
        match self {
            LocateError::Ambiguous => "ambiguous_token",
            LocateError::Malformed => "malformed_token",
            LocateError::Missing => "missing_token",
        }
    }
}

impl From<TransportError> for LocateError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Duplicate | TransportError::EncodedName => LocateError::Ambiguous,
            _ => LocateError::Malformed,
        }
    }
}

/// The candidate tokens of a request, to try in order, and its raw path
/// below them (without the `/_mg/<token>` prefix when the token came in
/// the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located<'a> {
    tokens: [&'a str; MAX_COOKIE_TOKENS],
    len: usize,
    /// The raw (still encoded) path below the token.
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

    fn push(&mut self, token: &'a str) -> Result<(), LocateError> {
        let slot = self
            .tokens
            .get_mut(self.len)
            .ok_or(LocateError::Ambiguous)?;
        *slot = token;
        self.len += 1;
        Ok(())
    }

    /// The tokens to try, in order; at least one.
    pub fn tokens(&self) -> &[&'a str] {
        &self.tokens[..self.len]
    }
}

/// Finds the candidate tokens of a request for the raw `path` (below the
/// mount), the raw `query`, and its `Cookie` header lines (HTTP/2 may
/// split them over several).
pub fn locate<'a>(
    path: &'a str,
    query: Option<&'a str>,
    cookie_lines: impl IntoIterator<Item = &'a str>,
    enabled: Transports,
) -> Result<Located<'a>, LocateError> {
    let mut in_path = None;
    let mut rest = path;
    if enabled.path {
        if let Some((token, below)) = split_path_form(path)? {
            in_path = Some(token);
            rest = below;
        }
    }
    let in_query = if enabled.query {
        token_from_query(query.unwrap_or(""))?
    } else {
        None
    };
    match (in_path, in_query) {
        (Some(_), Some(_)) => return Err(LocateError::Ambiguous),
        (Some(token), None) | (None, Some(token)) => {
            let mut found = Located::none(rest);
            found.push(token)?;
            return Ok(found);
        }
        (None, None) => {}
    }
    if enabled.cookie {
        let mut found = Located::none(rest);
        for token in cookie_lines.into_iter().flat_map(tokens_from_cookie_header) {
            found.push(token)?;
        }
        if found.len > 0 {
            return Ok(found);
        }
    }
    Err(LocateError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Transports {
        Transports::default()
    }

    fn found<'a>(
        r: Result<Located<'a>, LocateError>,
    ) -> Result<(Vec<&'a str>, &'a str), LocateError> {
        r.map(|l| (l.tokens().to_vec(), l.path))
    }

    #[test]
    fn one_token_from_any_transport() {
        assert_eq!(
            found(locate("/a", Some("mg_token=T"), [], all())),
            Ok((vec!["T"], "/a"))
        );
        assert_eq!(
            found(locate("/_mg/T/a/b", None, [], all())),
            Ok((vec!["T"], "/a/b"))
        );
        assert_eq!(
            found(locate("/a", None, ["x=1; mg_token=T"], all())),
            Ok((vec!["T"], "/a"))
        );
    }

    #[test]
    fn a_token_in_the_url_wins_over_cookies() {
        let c = ["mg_token=C; mg_token=D"];
        assert_eq!(
            found(locate("/a", Some("mg_token=T"), c, all())),
            Ok((vec!["T"], "/a"))
        );
        assert_eq!(
            found(locate("/_mg/T/a", None, c, all())),
            Ok((vec!["T"], "/a"))
        );
        // Cookies are not even read then: a malformed one does not matter.
        assert_eq!(
            found(locate("/a", Some("mg_token=T"), ["mg_token="], all())),
            Ok((vec!["T"], "/a"))
        );
    }

    #[test]
    fn every_token_cookie_is_a_candidate_in_order() {
        let c = ["mg_token=A; x=1", "mg_token=B; mg_token=; mg_token=\"C\""];
        assert_eq!(
            found(locate("/a", None, c, all())),
            Ok((vec!["A", "B", "C"], "/a"))
        );
        let four = ["mg_token=A; mg_token=B; mg_token=C; mg_token=D"];
        assert_eq!(
            found(locate("/a", None, four, all())).map(|f| f.0.len()),
            Ok(4)
        );
        let five = [
            "mg_token=A; mg_token=B; mg_token=C; mg_token=D",
            "mg_token=E",
        ];
        assert_eq!(
            found(locate("/a", None, five, all())),
            Err(LocateError::Ambiguous)
        );
        // Empty values are no candidates.
        assert_eq!(
            found(locate("/a", None, ["mg_token="], all())),
            Err(LocateError::Missing)
        );
    }

    #[test]
    fn zero_tokens_or_two_in_the_url_are_refused() {
        assert_eq!(
            found(locate("/a", None, [], all())),
            Err(LocateError::Missing)
        );
        assert_eq!(
            found(locate("/_mg/T/a", Some("mg_token=T"), [], all())),
            Err(LocateError::Ambiguous)
        );
        assert_eq!(
            found(locate("/a", Some("mg_token=T&mg_token=U"), [], all())),
            Err(LocateError::Ambiguous)
        );
        assert_eq!(
            found(locate("/a", Some("mg%5Ftoken=T"), [], all())),
            Err(LocateError::Ambiguous)
        );
        assert_eq!(
            found(locate("/_mg/T", None, [], all())),
            Err(LocateError::Malformed)
        );
        let only_query = Transports {
            query: true,
            cookie: false,
            path: false,
        };
        // A disabled transport is not looked at: "/_mg/T/a" is a plain path,
        // and cookies are ignored.
        assert_eq!(
            found(locate("/_mg/T/a", None, ["mg_token=C"], only_query)),
            Err(LocateError::Missing)
        );
    }
}
