//! Conditional requests (RFC 9110 §13): validators and their evaluation in
//! the order of §13.2.2.

use std::time::SystemTime;

/// The outcome of the preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Serve the request.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The validators of the selected representation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validators<'a> {
    /// The strong ETag, quotes included.
    pub etag: &'a str,
    /// Last modification, at whole-second precision.
    pub last_modified: Option<SystemTime>,
}

/// The request's conditional header values: the lists with all their
/// lines joined, the dates only when sent once (see [`super::single`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

/// Splits an entity-tag list; `None` for an item that is not an entity-tag.
fn entity_tags(list: &str) -> impl Iterator<Item = Option<(bool, &str)>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|tag| {
            let (weak, rest) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            let ok = rest.len() >= 2
                && rest.starts_with('"')
                && rest.ends_with('"')
                && !rest[1..rest.len() - 1].contains('"');
            ok.then_some((weak, rest))
        })
}

/// Strong comparison: both strong and identical.
fn matches_strong(list: &str, etag: &str) -> bool {
    list.trim() == "*"
        || entity_tags(list)
            .flatten()
            .any(|(weak, t)| !weak && t == etag)
}

/// Weak comparison: opaque tags identical, weakness ignored.
fn matches_weak(list: &str, etag: &str) -> bool {
    list.trim() == "*" || entity_tags(list).flatten().any(|(_, t)| t == etag)
}

fn date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

/// Evaluates the preconditions of a GET or HEAD in RFC 9110 §13.2.2 order.
pub(crate) fn evaluate(c: &Conditions<'_>, v: &Validators<'_>) -> Precondition {
    // 1. If-Match
    if let Some(im) = c.if_match {
        if !matches_strong(im, v.etag) {
            return Precondition::Failed;
        }
    } else if let (Some(ius), Some(lm)) = (c.if_unmodified_since.and_then(date), v.last_modified) {
        // 2. If-Unmodified-Since (only without If-Match; an invalid date is ignored)
        if lm > ius {
            return Precondition::Failed;
        }
    }
    // 3. If-None-Match
    if let Some(inm) = c.if_none_match {
        if matches_weak(inm, v.etag) {
            return Precondition::NotModified;
        }
    } else if let (Some(ims), Some(lm)) = (c.if_modified_since.and_then(date), v.last_modified) {
        // 4. If-Modified-Since (only without If-None-Match)
        if lm <= ims {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether an `If-Range` value lets the `Range` header apply (RFC 9110
/// §13.1.5): a strong ETag equal to ours, or a date equal to our
/// Last-Modified.
pub(crate) fn if_range_holds(value: &str, v: &Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return !value.starts_with("W/") && value == v.etag;
    }
    match (date(value), v.last_modified) {
        (Some(d), Some(lm)) => d == lm,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn v() -> Validators<'static> {
        Validators {
            etag: "\"a-b\"",
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        }
    }
    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    fn c<'a>(
        im: Option<&'a str>,
        inm: Option<&'a str>,
        ims: Option<&'a str>,
        ius: Option<&'a str>,
    ) -> Conditions<'a> {
        Conditions {
            if_match: im,
            if_none_match: inm,
            if_modified_since: ims,
            if_unmodified_since: ius,
        }
    }

    #[test]
    fn rfc_order() {
        use Precondition::*;
        assert_eq!(evaluate(&c(None, None, None, None), &v()), Proceed);
        assert_eq!(
            evaluate(&c(Some("\"a-b\""), None, None, None), &v()),
            Proceed
        );
        assert_eq!(evaluate(&c(Some("*"), None, None, None), &v()), Proceed);
        assert_eq!(
            evaluate(&c(Some("W/\"a-b\""), None, None, None), &v()),
            Failed
        );
        assert_eq!(evaluate(&c(Some("\"x\""), None, None, None), &v()), Failed);
        assert_eq!(
            evaluate(&c(Some("garbage"), None, None, None), &v()),
            Failed
        );
        assert_eq!(evaluate(&c(None, None, None, Some(BEFORE)), &v()), Failed);
        assert_eq!(evaluate(&c(None, None, None, Some(LM)), &v()), Proceed);
        assert_eq!(
            evaluate(&c(None, None, None, Some("not a date")), &v()),
            Proceed
        );
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            evaluate(&c(Some("\"a-b\""), None, None, Some(BEFORE)), &v()),
            Proceed
        );
        assert_eq!(
            evaluate(&c(None, Some("\"x\", W/\"a-b\""), None, None), &v()),
            NotModified
        );
        assert_eq!(evaluate(&c(None, Some("*"), None, None), &v()), NotModified);
        assert_eq!(
            evaluate(&c(None, Some("\"x\""), Some(LM), None), &v()),
            Proceed
        );
        assert_eq!(evaluate(&c(None, None, Some(LM), None), &v()), NotModified);
        assert_eq!(evaluate(&c(None, None, Some(BEFORE), None), &v()), Proceed);
        assert_eq!(
            evaluate(&c(None, None, Some("yesterday"), None), &v()),
            Proceed
        );
        // 412 takes precedence over 304.
        assert_eq!(
            evaluate(&c(Some("\"x\""), Some("\"a-b\""), None, None), &v()),
            Failed
        );
    }

    #[test]
    fn if_range() {
        assert!(if_range_holds("\"a-b\"", &v()));
        assert!(!if_range_holds("W/\"a-b\"", &v()));
        assert!(!if_range_holds("\"other\"", &v()));
        assert!(if_range_holds(LM, &v()));
        assert!(!if_range_holds(BEFORE, &v()));
        assert!(!if_range_holds("garbage", &v()));
    }
}
