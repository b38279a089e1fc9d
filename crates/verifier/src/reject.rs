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
    /// 405 `method_not_allowed`: only GET and HEAD (and PUT, with uploads on).
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
    /// 413 `too_large`: an upload larger than its link or the server allows.
    TooLarge,
    /// 415 `content_type`: an upload without the content type its link names.
    UploadContentType,
    /// 415 `content_mismatch`: an upload whose first bytes are not of the
    /// content type it is sent as.
    ContentMismatch,
    /// 400 `digest_mismatch`: an upload whose bytes do not hash to the
    /// link's SHA-256 or the request's `Content-Digest`.
    DigestMismatch,
    /// 400 `bad_digest`: a `Content-Digest` that cannot be read.
    BadDigest,
    /// 400 `incomplete_body`: the upload's body ended before its length.
    IncompleteBody,
    /// 408 `body_timeout`: the upload's body sent nothing for too long.
    BodyTimeout,
    /// 409 `exists`: a file is at the name and the link may not replace it.
    Exists,
    /// 412 `exists`: as [`Reject::Exists`], asked with `If-None-Match: *`.
    ExistsPrecondition,
    /// 409 `not_a_file`: a directory (or other non-file) is at the name.
    NotAFile,
    /// 409 `no_directory`: a directory on the way to the name is missing.
    NoDirectory,
    /// 417 `expectation_failed`: an `Expect` other than `100-continue`.
    Expectation,
    /// 507 `insufficient_storage`: the upload would leave too little space.
    InsufficientStorage,
    /// 403 `not_writable`: the server may not write where the upload goes.
    NotWritable,
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
            | Reject::CorsOrigin
            | Reject::NotWritable => StatusCode::FORBIDDEN,
            Reject::NotFound => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reject::UriTooLong => StatusCode::URI_TOO_LONG,
            Reject::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::Busy | Reject::RevocationsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reject::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::UploadContentType | Reject::ContentMismatch => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Reject::DigestMismatch | Reject::BadDigest | Reject::IncompleteBody => {
                StatusCode::BAD_REQUEST
            }
            Reject::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Reject::Exists | Reject::NotAFile | Reject::NoDirectory => StatusCode::CONFLICT,
            Reject::ExistsPrecondition => StatusCode::PRECONDITION_FAILED,
            Reject::Expectation => StatusCode::EXPECTATION_FAILED,
            Reject::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
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
            Reject::TooLarge => "too_large",
            Reject::UploadContentType => "content_type",
            Reject::ContentMismatch => "content_mismatch",
            Reject::DigestMismatch => "digest_mismatch",
            Reject::BadDigest => "bad_digest",
            Reject::IncompleteBody => "incomplete_body",
            Reject::BodyTimeout => "body_timeout",
            Reject::Exists | Reject::ExistsPrecondition => "exists",
            Reject::NotAFile => "not_a_file",
            Reject::NoDirectory => "no_directory",
            Reject::Expectation => "expectation_failed",
            Reject::InsufficientStorage => "insufficient_storage",
            Reject::NotWritable => "not_writable",
        }
    }

    /// Bytes of the response body: the code and a newline.
    pub(crate) fn body_len(self) -> usize {
        self.code().len() + 1
    }
}
