//! Why a request is refused: one variant per reason, each with its status
//! and a short machine-readable reason code that is safe to show and to
//! log (docs/FORMAT.md §8 lists them all).

use http::StatusCode;

/// A refusal, before or instead of serving a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 400 `malformed_request`: bytes that cannot start a request, too
    /// many empty lines before one, or a head the parser refuses.
    MalformedRequest,
    /// 400 `bad_target`: a raw `#` in the request target.
    BadTarget,
    /// 400 `bad_host`: `Host` missing (HTTP/1.1), doubled, malformed, or
    /// not the HTTP/2 `:authority`.
    BadHost,
    /// 400 `bad_path`: the path is not canonical, or below `/_mg/`.
    BadPath,
    /// 400 `ambiguous_token`: more than one token, or an escaped name.
    AmbiguousToken,
    /// 403 `missing_token`: no token in any enabled transport.
    MissingToken,
    /// 403 `malformed_token`: a token that is no token (an empty one, a
    /// malformed path form).
    MalformedToken,
    /// 403: the link does not grant the request; the signer's reason code
    /// (`expired`, `scope`, `bad_signature`, ...).
    Link(&'static str),
    /// 403 `revoked`: the link is genuine and current, but revoked.
    Revoked,
    /// 403 `cors_origin`: a CORS preflight from an origin not allowed.
    CorsOrigin,
    /// 404 `not_found`: nothing to serve here.
    NotFound,
    /// 405 `method_not_allowed`: only GET and HEAD.
    MethodNotAllowed,
    /// 414 `uri_too_long`: the request line is longer than the server reads.
    UriTooLong,
    /// 431 `head_too_large`: the request head is larger than the server reads.
    HeadTooLarge,
    /// 503 `busy`: out of resources for now.
    Busy,
    /// 503 `revocations_unavailable`: the revocation rules are too old to
    /// trust (their source out of reach), so no link is served.
    RevocationsUnavailable,
    /// 500 `internal`: a server-side fault (never caused by client input alone).
    Internal,
}

impl Reject {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Reject::MalformedRequest
            | Reject::BadTarget
            | Reject::BadHost
            | Reject::BadPath
            | Reject::AmbiguousToken => StatusCode::BAD_REQUEST,
            Reject::MissingToken
            | Reject::MalformedToken
            | Reject::Link(_)
            | Reject::Revoked
            | Reject::CorsOrigin => StatusCode::FORBIDDEN,
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reject::UriTooLong => StatusCode::URI_TOO_LONG,
            Reject::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::Busy | Reject::RevocationsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reject::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The reason code: the response body (with a newline), the
    /// `mediagate-reason` header and the access log's `reason`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Reject::MalformedRequest => "malformed_request",
            Reject::BadTarget => "bad_target",
            Reject::BadHost => "bad_host",
            Reject::BadPath => "bad_path",
            Reject::AmbiguousToken => "ambiguous_token",
            Reject::MissingToken => "missing_token",
            Reject::MalformedToken => "malformed_token",
            Reject::Link(code) => code,
            Reject::Revoked => "revoked",
            Reject::CorsOrigin => "cors_origin",
            Reject::NotFound => "not_found",
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::UriTooLong => "uri_too_long",
            Reject::HeadTooLarge => "head_too_large",
            Reject::Busy => "busy",
            Reject::RevocationsUnavailable => "revocations_unavailable",
            Reject::Internal => "internal",
        }
    }

    /// Bytes of the response body: the code and a newline.
    pub(crate) fn body_len(self) -> usize {
        self.code().len() + 1
    }
}
