//! Building responses: the file response with its HTTP semantics
//! (validators, conditionals, ranges, caching, overrides), and the short
//! uniform error responses.

use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
    RETRY_AFTER, X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};
use mediagate_signer::Grant;
use mediagate_signer::time::{Duration, OffsetDateTime};

use crate::body::MediaBody;
use crate::cors::CorsRules;
use crate::files::cache::Entry;
use crate::headers::conditional::{self, Conditions, Precondition, Validators};
use crate::headers::range::{self, RangeRequest};
use crate::headers::{self, Single};
use crate::reject::Reject;

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const SANDBOX: HeaderValue = HeaderValue::from_static("sandbox");

/// How responses to valid links may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CachePolicy {
    /// `Cache-Control: private, max-age=N`, with N the smaller of `max_age`
    /// and the link's remaining lifetime.
    Private {
        /// The longest max-age sent.
        max_age: Duration,
    },
    /// `Cache-Control: no-store`.
    NoStore,
}

impl Default for CachePolicy {
    /// Private, at most one hour.
    fn default() -> Self {
        CachePolicy::Private {
            max_age: Duration::hours(1),
        }
    }
}

/// The header that names a refusal's reason code, as its body does.
pub(crate) const REASON: http::HeaderName = http::HeaderName::from_static("mediagate-reason");

/// The short, uniform response for a refusal: the reason code as text (and
/// in a `mediagate-reason` header), never the path or the token, and never
/// cached.
pub(crate) fn reject(r: Reject) -> Response<MediaBody> {
    let mut res = Response::new(MediaBody::line(r.code()));
    *res.status_mut() = r.status();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, TEXT_PLAIN);
    h.insert(CONTENT_LENGTH, HeaderValue::from(r.body_len()));
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    // The reason in a header too: the answer to a HEAD has no body.
    h.insert(REASON, HeaderValue::from_static(r.code()));
    match r {
        Reject::MethodNotAllowed => {
            h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        Reject::Busy | Reject::RevocationsUnavailable => {
            h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    res
}

/// The answer to an allowed CORS preflight (its CORS headers are added by
/// the caller): no content, nothing to cache but the preflight itself.
pub(crate) fn preflight(uploads: bool) -> Response<MediaBody> {
    let mut res = Response::new(MediaBody::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    CorsRules::preflight_headers(res.headers_mut(), uploads);
    res
}

/// The answer to a stored upload: `status` (201 for a new file, 204 for a
/// replaced one), the `ETag` downloads of it will carry, nothing to cache.
pub(crate) fn stored(status: StatusCode, etag: HeaderValue) -> Response<MediaBody> {
    let mut res = Response::new(MediaBody::empty());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(ETAG, etag);
    h.insert(CACHE_CONTROL, NO_STORE);
    if status != StatusCode::NO_CONTENT {
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    res
}

/// The auth-only endpoint's answer for a granted link: 204, the user in
/// `mediagate-user`, the link's id (for revoking it) in `mediagate-link-id`
/// and its expiry (Unix seconds) in `mediagate-expires`, nothing to cache.
pub(crate) fn granted_for_proxy(grant: &Grant) -> Response<MediaBody> {
    let mut res = Response::new(MediaBody::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, NO_STORE);
    let claims = grant.claims();
    // User ids are printable ASCII, link ids base64url: valid values.
    if let Ok(user) = HeaderValue::from_str(claims.subject()) {
        h.insert(http::HeaderName::from_static("mediagate-user"), user);
    }
    if let Ok(id) = HeaderValue::from_str(&grant.link_id().to_string()) {
        h.insert(http::HeaderName::from_static("mediagate-link-id"), id);
    }
    h.insert(
        http::HeaderName::from_static("mediagate-expires"),
        HeaderValue::from(claims.expires_at().unix_timestamp()),
    );
    res
}

/// The answer of `X-Accel-Redirect` mode to a granted request for `path`:
/// no body, and the headers nginx keeps through the redirect
/// (`Content-Type`, `Content-Disposition`, `Cache-Control`) as a direct
/// answer would have them; nginx serves `prefix` + `path` (encoded).
pub(crate) fn accel_redirect(
    prefix: &str,
    path: &str,
    grant: &Grant,
    cache: CachePolicy,
    now: OffsetDateTime,
) -> Response<MediaBody> {
    let mut res = Response::new(MediaBody::empty());
    let h = res.headers_mut();
    let target = format!("{prefix}{}", mediagate_signer::encode_path(path));
    // The prefix is checked when configured and the path is encoded: only
    // visible ASCII remains.
    if let Ok(target) = HeaderValue::from_str(&target) {
        h.insert(http::HeaderName::from_static("x-accel-redirect"), target);
    }
    let content_type =
        signed_content_type(grant).unwrap_or_else(|| crate::files::content_type::guess(path));
    h.insert(CONTENT_TYPE, content_type);
    if let Some(cd) = signed_disposition(grant) {
        h.insert(CONTENT_DISPOSITION, cd);
    }
    h.insert(CACHE_CONTROL, cache_control(cache, grant, now));
    res
}

/// The content type the link sets, if any (a valid header value).
fn signed_content_type(grant: &Grant) -> Option<HeaderValue> {
    grant
        .claims()
        .content_type()
        .and_then(|ct| HeaderValue::from_str(ct).ok())
}

/// The `Content-Disposition` the link asks for, if any.
fn signed_disposition(grant: &Grant) -> Option<HeaderValue> {
    grant
        .claims()
        .content_disposition()
        .and_then(|cd| HeaderValue::from_str(&cd).ok())
}

/// The health-check response.
pub(crate) fn health(head: bool) -> Response<MediaBody> {
    let mut res = Response::new(if head {
        MediaBody::empty()
    } else {
        MediaBody::text("ok\n")
    });
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, TEXT_PLAIN);
    h.insert(CONTENT_LENGTH, HeaderValue::from(3));
    h.insert(CACHE_CONTROL, NO_STORE);
    res
}

/// What the file response will be, before the body is attached.
pub(crate) struct Plan {
    pub response: Response<MediaBody>,
    /// The byte range to stream (`None` for no body).
    pub body: Option<(u64, u64)>,
}

/// Builds the response for a granted request on a file version.
pub(crate) fn file(
    req_headers: &HeaderMap,
    head: bool,
    grant: &Grant,
    entry: &Entry,
    cache: CachePolicy,
    now: OffsetDateTime,
) -> Plan {
    let len = entry.identity.len;
    let validators = Validators {
        etag: entry.etag.to_str().unwrap_or_default(),
        last_modified: entry.last_modified,
    };
    let if_match = headers::list(req_headers, IF_MATCH);
    let if_none_match = headers::list(req_headers, IF_NONE_MATCH);
    let conditions = Conditions {
        if_match: if_match.as_deref(),
        if_none_match: if_none_match.as_deref(),
        // An invalid date is ignored (RFC 9110 §13.1.3-4), and so is a
        // date sent twice.
        if_modified_since: headers::single(req_headers, IF_MODIFIED_SINCE).valid(),
        if_unmodified_since: headers::single(req_headers, IF_UNMODIFIED_SINCE).valid(),
    };
    let mut headers = HeaderMap::with_capacity(12);
    let h = &mut headers;
    h.insert(ETAG, entry.etag.clone());
    if let Some(lm) = &entry.last_modified_header {
        h.insert(LAST_MODIFIED, lm.clone());
    }
    h.insert(CACHE_CONTROL, cache_control(cache, grant, now));
    h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);

    match conditional::evaluate(&conditions, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return plan(StatusCode::NOT_MODIFIED, headers, None);
        }
        Precondition::Failed => {
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            return plan(StatusCode::PRECONDITION_FAILED, headers, None);
        }
    }

    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // The file's own type was judged when its version was cached; a
    // signed override is judged here.
    let (content_type, active) = match signed_content_type(grant) {
        Some(ct) => {
            let active = crate::files::content_type::renders_active_content(&ct);
            (ct, active)
        }
        None => (entry.content_type.clone(), entry.active_content),
    };
    if active {
        // A browser opening this file directly runs it with the media
        // origin's privileges unless told otherwise: no scripts, an origin
        // of its own. Images and media embedded elsewhere are unaffected.
        h.insert(CONTENT_SECURITY_POLICY, SANDBOX);
    }
    h.insert(CONTENT_TYPE, content_type);
    if let Some(cd) = signed_disposition(grant) {
        h.insert(CONTENT_DISPOSITION, cd);
    }
    // A Range sent twice is not a valid range: the whole file (as for any
    // range the server does not take). An If-Range sent twice does not hold.
    // If-Range is read only when there is a range to condition.
    let if_range_holds = || match headers::single(req_headers, IF_RANGE) {
        Single::Absent => true,
        Single::One(ir) => conditional::if_range_holds(ir, &validators),
        Single::Invalid => false,
    };
    let range = match headers::single(req_headers, RANGE) {
        Single::One(r) if if_range_holds() => range::evaluate(r, len),
        _ => RangeRequest::Full,
    };
    let mut status = StatusCode::OK;
    let (start, end) = match range {
        RangeRequest::Full => (0, len),
        RangeRequest::Partial(r) => {
            status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, len))
            {
                h.insert(CONTENT_RANGE, v);
            }
            (r.start, r.end)
        }
        RangeRequest::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(CONTENT_RANGE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            h.remove(CONTENT_DISPOSITION);
            return plan(StatusCode::RANGE_NOT_SATISFIABLE, headers, None);
        }
    };
    let content_length = if end - start == len {
        entry.content_length.clone()
    } else {
        HeaderValue::from(end - start)
    };
    h.insert(CONTENT_LENGTH, content_length);
    let body = (!head && end > start).then_some((start, end));
    plan(status, headers, body)
}

fn plan(status: StatusCode, headers: HeaderMap, body: Option<(u64, u64)>) -> Plan {
    let mut response = Response::new(MediaBody::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Plan { response, body }
}

fn cache_control(policy: CachePolicy, grant: &Grant, now: OffsetDateTime) -> HeaderValue {
    match policy {
        CachePolicy::NoStore => NO_STORE,
        CachePolicy::Private { max_age } => {
            let secs = max_age
                .min(grant.claims().remaining(now))
                .whole_seconds()
                .max(0);
            // Per response, so without the formatting machinery: one
            // allocation, for the value itself.
            const PREFIX: &[u8] = b"private, max-age=";
            let mut digits = itoa::Buffer::new();
            let digits = digits.format(secs).as_bytes();
            let mut value = [0u8; PREFIX.len() + 20];
            value[..PREFIX.len()].copy_from_slice(PREFIX);
            let end = PREFIX.len() + digits.len();
            value[PREFIX.len()..end].copy_from_slice(digits);
            HeaderValue::from_bytes(&value[..end]).unwrap_or(NO_STORE)
        }
    }
}
