//! Finding the token of a request in the enabled transports. Exactly one
//! must be present: none is a 403, more than one is ambiguous (400).

use http::HeaderMap;
use http::header::COOKIE;
use mediagate_signer::transport::{self, TransportError};

use crate::config::Transports;
use crate::reject::Reject;

/// The token and the raw path below it (the mount-relative path, without
/// the `/_mg/<token>` prefix when the token came in the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located<'a> {
    pub token: &'a str,
    pub path: &'a str,
}

fn transport_error(e: TransportError) -> Reject {
    match e {
        TransportError::Duplicate | TransportError::EncodedName => {
            Reject::BadRequest("ambiguous_token")
        }
        _ => Reject::Forbidden("malformed_token"),
    }
}

/// Finds the one token of a request.
pub(crate) fn locate<'a>(
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    enabled: Transports,
) -> Result<Located<'a>, Reject> {
    let mut found: Option<&'a str> = None;
    let mut take = |token: &'a str| {
        if found.replace(token).is_some() {
            Err(Reject::BadRequest("ambiguous_token"))
        } else {
            Ok(())
        }
    };
    let mut rest = path;
    if enabled.path {
        if let Some((token, below)) = transport::split_path_form(path).map_err(transport_error)? {
            take(token)?;
            rest = below;
        }
    }
    if enabled.query {
        if let Some(token) =
            transport::token_from_query(query.unwrap_or("")).map_err(transport_error)?
        {
            take(token)?;
        }
    }
    if enabled.cookie {
        for value in headers.get_all(COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            if let Some(token) =
                transport::token_from_cookie_header(value).map_err(transport_error)?
            {
                take(token)?;
            }
        }
    }
    match found {
        Some(token) => Ok(Located { token, path: rest }),
        None => Err(Reject::Forbidden("missing_token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn all() -> Transports {
        Transports::default()
    }

    #[test]
    fn one_token_from_any_transport() {
        let none = HeaderMap::new();
        assert_eq!(
            locate("/a", Some("mg_token=T"), &none, all()),
            Ok(Located {
                token: "T",
                path: "/a"
            })
        );
        assert_eq!(
            locate("/_mg/T/a/b", None, &none, all()),
            Ok(Located {
                token: "T",
                path: "/a/b"
            })
        );
        let mut cookies = HeaderMap::new();
        cookies.append(COOKIE, HeaderValue::from_static("x=1; mg_token=T"));
        assert_eq!(
            locate("/a", None, &cookies, all()),
            Ok(Located {
                token: "T",
                path: "/a"
            })
        );
    }

    #[test]
    fn zero_or_two_tokens_are_refused() {
        let none = HeaderMap::new();
        assert_eq!(
            locate("/a", None, &none, all()),
            Err(Reject::Forbidden("missing_token"))
        );
        assert_eq!(
            locate("/_mg/T/a", Some("mg_token=T"), &none, all()),
            Err(Reject::BadRequest("ambiguous_token"))
        );
        let mut cookies = HeaderMap::new();
        cookies.append(COOKIE, HeaderValue::from_static("mg_token=T"));
        cookies.append(COOKIE, HeaderValue::from_static("mg_token=U"));
        assert_eq!(
            locate("/a", None, &cookies, all()),
            Err(Reject::BadRequest("ambiguous_token"))
        );
        let only_query = Transports {
            query: true,
            cookie: false,
            path: false,
        };
        // A disabled transport is not looked at: "/_mg/T/a" is a plain path.
        assert_eq!(
            locate("/_mg/T/a", None, &none, only_query),
            Err(Reject::Forbidden("missing_token"))
        );
    }
}
