//! A request's token and path, found as `mediagate serve` finds them (see
//! the verifier's `token.rs`): a token in the URL (the path form or the
//! query) wins and cookies are not read; two in the URL are ambiguous;
//! otherwise every `mg_token` cookie is a candidate, in order.

use mediagate_signer::MediaPath;
use mediagate_signer::transport::{self, TransportError};
use pyo3::prelude::*;

use crate::errors;

/// The most token cookies one request may carry, as the server allows.
const MAX_COOKIE_TOKENS: usize = 4;

/// The candidate tokens of a request and its path below the token.
pub(crate) struct Located<'a> {
    pub tokens: Vec<&'a str>,
    pub path: &'a str,
}

fn transport_error(e: TransportError) -> PyErr {
    match e {
        TransportError::Duplicate | TransportError::EncodedName => ambiguous(),
        _ => errors::refusal("malformed_token", 403, "the token is malformed"),
    }
}

fn ambiguous() -> PyErr {
    errors::refusal(
        "ambiguous_token",
        400,
        "the request carries more than one token",
    )
}

/// Finds the tokens of a request: `path` is the raw (percent-encoded) path
/// below the mount, `query` the raw query string, `cookie` the `Cookie`
/// header.
pub(crate) fn locate<'a>(
    path: &'a str,
    query: Option<&'a str>,
    cookie: Option<&'a str>,
) -> PyResult<Located<'a>> {
    let (in_path, rest) = match transport::split_path_form(path).map_err(transport_error)? {
        Some((token, below)) => (Some(token), below),
        None => (None, path),
    };
    let in_query = transport::token_from_query(query.unwrap_or("")).map_err(transport_error)?;
    match (in_path, in_query) {
        (Some(_), Some(_)) => return Err(ambiguous()),
        (Some(t), None) | (None, Some(t)) => {
            return Ok(Located {
                tokens: vec![t],
                path: rest,
            });
        }
        (None, None) => {}
    }
    let tokens: Vec<&str> = transport::tokens_from_cookie_header(cookie.unwrap_or("")).collect();
    if tokens.len() > MAX_COOKIE_TOKENS {
        return Err(ambiguous());
    }
    if tokens.is_empty() {
        return Err(errors::refusal(
            "missing_token",
            403,
            "the request carries no token",
        ));
    }
    Ok(Located { tokens, path: rest })
}

/// The canonical form of a request's raw path, as the server checks it.
pub(crate) fn canonical(raw: &str) -> PyResult<MediaPath<'_>> {
    MediaPath::from_uri_path(raw)
        .ok()
        .filter(|p| !p.is_reserved())
        .ok_or_else(|| errors::refusal("bad_path", 400, "the path is not canonical"))
}

/// The decoded, canonical path of a raw (percent-encoded) URL path, as
/// `mediagate serve` reads it; a `VerifyError` with code `bad_path` (status
/// 400) for a path it refuses (`..`, `.`, `//`, encoded slashes, ...).
#[pyfunction]
pub(crate) fn canonical_path(raw: &str) -> PyResult<String> {
    Ok(canonical(raw)?.as_str().to_owned())
}
