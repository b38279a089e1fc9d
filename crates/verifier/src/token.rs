//! Finding the token of a request: the signer's rule
//! ([`mediagate_signer::transport::locate`], shared with the Python
//! package), on the request's `Cookie` header lines, its failures as
//! refusals.

use http::HeaderMap;
use http::header::COOKIE;
use mediagate_signer::transport::{self, LocateError, Located};

use crate::reject::Reject;

pub use mediagate_signer::transport::Transports;

/// Finds the candidate tokens of a request for the raw `path` below the
/// mount.
pub(crate) fn locate<'a>(
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    enabled: Transports,
) -> Result<Located<'a>, Reject> {
    // HTTP/2 may split the cookies over several header lines.
    let cookies = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    transport::locate(path, query, cookies, enabled).map_err(|e| match e {
        LocateError::Ambiguous => Reject::AmbiguousToken,
        LocateError::Missing => Reject::MissingToken,
        _ => Reject::MalformedToken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn cookies_from_every_header_line_and_failures_as_refusals() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("mg_token=A"));
        h.append(COOKIE, HeaderValue::from_static("x=1; mg_token=B"));
        let all = Transports::default();
        let found = locate("/a", None, &h, all).unwrap();
        assert_eq!(found.tokens(), ["A", "B"]);
        let none = HeaderMap::new();
        assert_eq!(locate("/a", None, &none, all), Err(Reject::MissingToken));
        assert_eq!(
            locate("/_mg/T/a", Some("mg_token=T"), &none, all),
            Err(Reject::AmbiguousToken)
        );
        assert_eq!(
            locate("/a", Some("mg_token="), &none, all),
            Err(Reject::MalformedToken)
        );
    }
}
