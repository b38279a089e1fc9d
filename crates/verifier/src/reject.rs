//! Why a request is refused: one internal outcome per status, each with a
//! short machine-readable reason code that is safe to show and to log.

use http::StatusCode;

/// A refusal, before or instead of serving a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 400: the request itself is malformed.
    BadRequest(&'static str),
    /// 403: no valid link for this request.
    Forbidden(&'static str),
    /// 404: nothing to serve here.
    NotFound,
    /// 405: only GET and HEAD.
    MethodNotAllowed,
    /// 414: the request line is longer than the server reads.
    UriTooLong,
    /// 431: the request head is larger than the server reads.
    HeadTooLarge,
    /// 503: out of resources for now.
    Busy,
    /// 500: a server-side fault (never caused by client input alone).
    Internal,
}

impl Reject {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Reject::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reject::Forbidden(_) => StatusCode::FORBIDDEN,
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reject::UriTooLong => StatusCode::URI_TOO_LONG,
            Reject::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Reject::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Reject::BadRequest(code) | Reject::Forbidden(code) => code,
            Reject::NotFound => "not_found",
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::UriTooLong => "uri_too_long",
            Reject::HeadTooLarge => "head_too_large",
            Reject::Busy => "busy",
            Reject::Internal => "internal",
        }
    }

    /// The response body: the code and a newline.
    pub(crate) fn body(self) -> &'static str {
        match self.code() {
            "malformed_token" => "malformed_token\n",
            "unsupported_version" => "unsupported_version\n",
            "unknown_key" => "unknown_key\n",
            "bad_signature" => "bad_signature\n",
            "lifetime_too_long" => "lifetime_too_long\n",
            "not_yet_valid" => "not_yet_valid\n",
            "expired" => "expired\n",
            "method" => "method\n",
            "scope" => "scope\n",
            "ip" => "ip\n",
            "missing_token" => "missing_token\n",
            "ambiguous_token" => "ambiguous_token\n",
            "bad_path" => "bad_path\n",
            "bad_host" => "bad_host\n",
            "cors_origin" => "cors_origin\n",
            "not_found" => "not_found\n",
            "method_not_allowed" => "method_not_allowed\n",
            "uri_too_long" => "uri_too_long\n",
            "head_too_large" => "head_too_large\n",
            "bad_target" => "bad_target\n",
            "malformed_request" => "malformed_request\n",
            "busy" => "busy\n",
            "forbidden" => "forbidden\n",
            _ => "internal\n",
        }
    }
}
