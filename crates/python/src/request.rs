//! A request's token and path, found by the signer's rule (the one
//! `mediagate serve` applies: `mediagate_signer::transport::locate`), its
//! failures as the server's refusals.

use mediagate_signer::MediaPath;
use mediagate_signer::transport::{self, LocateError, Located, Transports};
use pyo3::prelude::*;

use crate::errors;

/// Finds the tokens of a request: `path` is the raw (percent-encoded) path
/// below the mount, `query` the raw query string, `cookie` the `Cookie`
/// header.
pub(crate) fn locate<'a>(
    path: &'a str,
    query: Option<&'a str>,
    cookie: Option<&'a str>,
) -> PyResult<Located<'a>> {
    transport::locate(path, query, cookie, Transports::default()).map_err(|e| {
        let status = if e == LocateError::Ambiguous {
            400
        } else {
            403
        };
        errors::refusal(e.code(), status, &e.to_string())
    })
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
