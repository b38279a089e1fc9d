//! How a token travels with a request: as a query parameter, a cookie, or a
//! leading path segment. The renderings (what [`SignedLink`](crate::SignedLink)
//! and [`LinkBuilder`](crate::LinkBuilder) hand out) are built here, and the
//! public functions find the token again, refusing any ambiguous request.
//!
//! ```
//! use mediagate_signer::transport::{split_path_form, token_from_query};
//!
//! assert_eq!(token_from_query("a=1&mg_token=TOKEN"), Ok(Some("TOKEN")));
//! assert_eq!(split_path_form("/_mg/TOKEN/videos/a.ts"), Ok(Some(("TOKEN", "/videos/a.ts"))));
//! assert_eq!(split_path_form("/videos/a.ts"), Ok(None));
//! ```

pub use crate::limits::PATH_MARKER;
pub use locate::{LocateError, Located, MAX_COOKIE_TOKENS, Transports, locate};

mod locate;

/// Name of the query parameter that carries a token.
pub const QUERY_PARAM: &str = "mg_token";
/// Name of the cookie that carries a token.
pub const COOKIE_NAME: &str = "mg_token";

/// Why the token of a request cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The token appears more than once (twice in the query, twice in one
    /// `Cookie` header, or in two transports).
    #[error("more than one token in the request")]
    Duplicate,
    /// The parameter or cookie is present with an empty value.
    #[error("empty token")]
    Empty,
    /// The parameter name is spelled with escapes (`mg%5Ftoken`), which
    /// other parsers would read as the token.
    #[error("token parameter name is percent-encoded")]
    EncodedName,
    /// The path form has the marker but no token segment and path after it.
    #[error("malformed path-form token")]
    PathForm,
}

/// Finds the token in a raw (still encoded) query string.
pub fn token_from_query(query: &str) -> Result<Option<&str>, TransportError> {
    let mut found = None;
    for pair in split_at_byte(query, b'&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != QUERY_PARAM {
            if (name.contains('%') || name.contains('+')) && decodes_to_param(name) {
                return Err(TransportError::EncodedName);
            }
            continue;
        }
        if found.is_some() {
            return Err(TransportError::Duplicate);
        }
        if value.is_empty() {
            return Err(TransportError::Empty);
        }
        found = Some(value);
    }
    Ok(found)
}

/// The parts of `s` between occurrences of the ASCII byte `sep`, as
/// `str::split` gives them; `memchr` finds the separators a vector at a
/// time, which matters for a query that is mostly one long token.
fn split_at_byte(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(sep.is_ascii());
    let mut start = 0;
    memchr::memchr_iter(sep, s.as_bytes())
        .chain(std::iter::once(s.len()))
        .map(move |end| {
            // `sep` is ASCII, so both ends are char boundaries.
            let part = s.get(start..end).unwrap_or_default();
            start = end + 1;
            part
        })
}

fn decodes_to_param(name: &str) -> bool {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(&name.replace('+', " ")).collect();
    decoded.eq_ignore_ascii_case(QUERY_PARAM.as_bytes())
}

/// Finds the token in the value of one `Cookie` header. Call it for each
/// `Cookie` header and treat two finds as [`TransportError::Duplicate`]
/// (or see [`tokens_from_cookie_header`] for a request that may carry
/// several).
pub fn token_from_cookie_header(header: &str) -> Result<Option<&str>, TransportError> {
    let mut values = cookie_values(header);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TransportError::Duplicate);
    }
    if first.is_empty() {
        return Err(TransportError::Empty);
    }
    Ok(Some(first))
}

/// Every non-empty token cookie in the value of one `Cookie` header, in the
/// order sent. A browser holding token cookies for nested paths (a link for
/// `/videos/` and one for `/videos/show-1/`) sends each that matches, the
/// one with the longer path first (RFC 6265 §5.4), so several are not
/// necessarily an attack; `mediagate-verifier` tries them in order.
pub fn tokens_from_cookie_header(header: &str) -> impl Iterator<Item = &str> {
    cookie_values(header).filter(|v| !v.is_empty())
}

/// The values of the token cookie in one `Cookie` header, quotes removed.
fn cookie_values(header: &str) -> impl Iterator<Item = &str> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
        (name == COOKIE_NAME).then(|| {
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
    })
}

/// Splits `/_mg/<token>/rest` into the token and `/rest`. Returns `None`
/// when the path does not start with the marker segment.
pub fn split_path_form(path: &str) -> Result<Option<(&str, &str)>, TransportError> {
    let Some(after) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(PATH_MARKER))
        .and_then(|p| p.strip_prefix('/'))
    else {
        return Ok(None);
    };
    let slash = after.find('/').ok_or(TransportError::PathForm)?;
    let (token, rest) = after.split_at(slash);
    if token.is_empty() {
        return Err(TransportError::Empty);
    }
    Ok(Some((token, rest)))
}

/// A token to render: already encoded, or the signed bytes, encoded
/// straight into the output (so that minting and rendering a link in one
/// step allocates the output and nothing else).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    Encoded(&'a str),
    Signed(&'a [u8]),
}

impl Token<'_> {
    fn len(self) -> usize {
        match self {
            Token::Encoded(t) => t.len(),
            Token::Signed(b) => crate::limits::encoded_len(b.len()),
        }
    }

    fn push_to(self, out: &mut String) {
        match self {
            Token::Encoded(t) => out.push_str(t),
            Token::Signed(b) => crate::wire::encode_token_into(b, out),
        }
    }
}

/// The token alone.
#[inline]
pub(crate) fn render_token(token: Token<'_>) -> String {
    let mut out = String::with_capacity(token.len());
    token.push_to(&mut out);
    out
}

/// `mg_token=<token>`.
pub(crate) fn render_query(token: Token<'_>) -> String {
    let mut out = String::with_capacity(QUERY_PARAM.len() + 1 + token.len());
    out.push_str(QUERY_PARAM);
    out.push('=');
    token.push_to(&mut out);
    out
}

/// `base` + encoded `path` + `?mg_token=<token>`.
#[inline]
pub(crate) fn render_url(base: &str, path: &str, token: Token<'_>) -> String {
    let base = base.trim_end_matches('/');
    let encoded = crate::path::Encoded::new(path);
    let mut out =
        String::with_capacity(base.len() + encoded.len() + 2 + QUERY_PARAM.len() + token.len());
    out.push_str(base);
    encoded.push_to(&mut out);
    out.push('?');
    out.push_str(QUERY_PARAM);
    out.push('=');
    token.push_to(&mut out);
    out
}

/// `base` + `/_mg/<token>` + encoded `path`.
pub(crate) fn render_path_form(base: &str, path: &str, token: Token<'_>) -> String {
    let base = base.trim_end_matches('/');
    let encoded = crate::path::Encoded::new(path);
    let mut out =
        String::with_capacity(base.len() + PATH_MARKER.len() + 2 + token.len() + encoded.len());
    out.push_str(base);
    out.push('/');
    out.push_str(PATH_MARKER);
    out.push('/');
    token.push_to(&mut out);
    encoded.push_to(&mut out);
    out
}

/// A `Set-Cookie` value carrying the token for requests below `mount` +
/// `path`, for `max_age` seconds.
pub(crate) fn render_set_cookie(
    mount: &str,
    path: &str,
    domain: Option<&str>,
    max_age: i64,
    token: Token<'_>,
) -> String {
    let mount = mount.trim_end_matches('/');
    let encoded = crate::path::Encoded::new(path);
    let mut out = String::with_capacity(token.len() + mount.len() + encoded.len() + 80);
    out.push_str(COOKIE_NAME);
    out.push('=');
    token.push_to(&mut out);
    out.push_str("; Path=");
    out.push_str(mount);
    encoded.push_to(&mut out);
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str("; Max-Age=");
    out.push_str(&max_age.to_string());
    out.push_str("; Secure; HttpOnly; SameSite=Lax");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn query_forms() {
        assert_eq!(token_from_query(""), Ok(None));
        assert_eq!(token_from_query("mg_token=abc"), Ok(Some("abc")));
        assert_eq!(token_from_query("x=1&mg_token=abc&y"), Ok(Some("abc")));
        assert_eq!(
            token_from_query("mg_token=a&mg_token=b"),
            Err(TransportError::Duplicate)
        );
        assert_eq!(
            token_from_query("mg_token=a&mg_token=a"),
            Err(TransportError::Duplicate)
        );
        assert_eq!(token_from_query("mg_token="), Err(TransportError::Empty));
        assert_eq!(token_from_query("mg_token"), Err(TransportError::Empty));
        assert_eq!(
            token_from_query("mg%5Ftoken=a"),
            Err(TransportError::EncodedName)
        );
        assert_eq!(
            token_from_query("MG%5FTOKEN=a"),
            Err(TransportError::EncodedName)
        );
        // Other spellings are other parameters.
        assert_eq!(token_from_query("MG_TOKEN=a&mg_token[]=b"), Ok(None));
    }

    #[test]
    fn cookie_forms() {
        assert_eq!(
            token_from_cookie_header("a=b; mg_token=abc"),
            Ok(Some("abc"))
        );
        assert_eq!(
            token_from_cookie_header("mg_token=\"abc\""),
            Ok(Some("abc"))
        );
        assert_eq!(token_from_cookie_header("a=b"), Ok(None));
        assert_eq!(
            token_from_cookie_header("mg_token=a; mg_token=b"),
            Err(TransportError::Duplicate)
        );
        assert_eq!(
            token_from_cookie_header("mg_token="),
            Err(TransportError::Empty)
        );
        assert_eq!(
            token_from_cookie_header("mg_token=; mg_token=b"),
            Err(TransportError::Duplicate)
        );
        let all: Vec<&str> =
            tokens_from_cookie_header("mg_token=a; x=1; mg_token=; mg_token=\"b\";mg_token=c")
                .collect();
        assert_eq!(all, ["a", "b", "c"]);
        assert_eq!(tokens_from_cookie_header("a=b; MG_TOKEN=c").count(), 0);
    }

    #[test]
    fn path_forms() {
        assert_eq!(split_path_form("/_mg/t/a/b"), Ok(Some(("t", "/a/b"))));
        assert_eq!(split_path_form("/_mg/t/"), Ok(Some(("t", "/"))));
        assert_eq!(split_path_form("/_mg/t"), Err(TransportError::PathForm));
        assert_eq!(split_path_form("/_mg//a"), Err(TransportError::Empty));
        assert_eq!(split_path_form("/_mgx/t/a"), Ok(None));
        assert_eq!(split_path_form("/a/_mg/t/a"), Ok(None));
    }

    proptest! {
        #[test]
        fn byte_split_is_str_split(s in "[a-zé&;=]{0,24}") {
            let ours: Vec<&str> = split_at_byte(&s, b'&').collect();
            let std: Vec<&str> = s.split('&').collect();
            prop_assert_eq!(ours, std);
        }

        #[test]
        fn parsers_never_panic(s in "[a-z_=&;%5F\"/ ]{0,40}") {
            let _ = token_from_query(&s);
            let _ = token_from_cookie_header(&s);
            prop_assert!(tokens_from_cookie_header(&s).all(|t| !t.is_empty()));
            if let Ok(Some((t, rest))) = split_path_form(&s) {
                prop_assert!(!t.is_empty() && !t.contains('/'));
                prop_assert!(rest.starts_with('/'));
            }
        }
    }
}
